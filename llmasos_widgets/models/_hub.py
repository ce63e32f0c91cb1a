"""The Hugging Face hub side of ``load_model``: the offline flag read at call time, and hub
errors (gated, missing, unreachable) turned into errors that say what to do."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from llmasos_widgets.models._errors import GatedModelError, ModelNotFoundError
from llmasos_widgets.models._names import SHORT_NAMES

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
NO_CONVERSION_VARIABLE = "DISABLE_SAFETENSORS_CONVERSION"


def hub_offline() -> bool:
    """Whether the hub must not be contacted.

    ``huggingface_hub`` reads ``HF_HUB_OFFLINE`` once, when it is imported; a notebook that sets
    ``os.environ["HF_HUB_OFFLINE"] = "1"`` afterwards is offline too, so the variables are read
    again here (with huggingface_hub's own notion of a true value).
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    return any(
        os.environ.get(variable, "").upper() in constants.ENV_VARS_TRUE_VALUES
        for variable in OFFLINE_VARIABLES
    )


@contextmanager
def hub_errors(repo_id: str, *, offline: bool) -> Iterator[None]:
    """Re-raise what the hub said about ``repo_id`` as an error that says what to do.

    ``transformers`` wraps ``huggingface_hub``'s errors in ``OSError``; the cause chain is
    searched for the original. Errors that did not come from the hub pass through unchanged.
    """
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    try:
        yield
    except (OSError, ValueError) as error:
        causes = list(_cause_chain(error))
        if any(isinstance(cause, GatedRepoError) for cause in causes):
            raise GatedModelError(_gated_message(repo_id)) from error
        if any(isinstance(cause, RepositoryNotFoundError) for cause in causes):
            raise ModelNotFoundError(_missing_repo_message(repo_id)) from error
        unreachable = (LocalEntryNotFoundError, OfflineModeIsEnabled)
        if any(isinstance(cause, unreachable) for cause in causes):
            message = offline_message if offline else _unreachable_message
            raise ModelNotFoundError(message(repo_id)) from error
        raise


def _cause_chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _has_token() -> bool:
    """Whether a token is configured, without asking the hub (``get_token`` may refresh one)."""
    from huggingface_hub import constants

    return bool(os.environ.get("HF_TOKEN")) or os.path.isfile(constants.HF_TOKEN_PATH)


def _gated_message(repo_id: str) -> str:
    page = f"https://huggingface.co/{repo_id}"
    if not _has_token():
        situation = "and this machine has no Hugging Face token"
    else:
        situation = (
            "and the token on this machine has no access to it yet (the licence was not "
            "accepted with this account, or the request is still pending)"
        )
    return (
        f"{repo_id!r} is a gated repository {situation}. To download it: 1) open {page}, log "
        "in and accept the licence; 2) on this machine run `hf auth login` (or set the HF_TOKEN "
        "environment variable to a token from https://huggingface.co/settings/tokens); "
        "3) call load_model again."
    )


def _missing_repo_message(repo_id: str) -> str:
    shorts = ", ".join(SHORT_NAMES)
    return (
        f"hub id {repo_id!r} was not found on the Hugging Face hub (it does not exist, or it is "
        f"private and this machine's token cannot see it). Check the spelling at "
        f"https://huggingface.co/{repo_id}; for a private repository run `hf auth login`. "
        f"Short names load_model knows: {shorts}."
    )


def offline_message(repo_id: str) -> str:
    """Why an offline load of ``repo_id`` failed, and how to get the files."""
    return (
        f"hub id {repo_id!r} is not (completely) in the local Hugging Face cache and this "
        "session is offline (HF_HUB_OFFLINE=1 or local_files_only=True). On a machine with "
        f"internet run `hf download {repo_id}` (or `huggingface-cli download {repo_id}`), "
        "then copy the cache or the downloaded directory here and pass its path; or go online "
        "(unset HF_HUB_OFFLINE, drop local_files_only=True) to let load_model download it."
    )


def _unreachable_message(repo_id: str) -> str:
    from huggingface_hub import constants

    return (
        f"could not reach the Hugging Face hub at {constants.ENDPOINT} and hub id {repo_id!r} "
        "is not in the local cache. Check the internet connection (and HTTPS_PROXY), or on a "
        f"machine with internet run `hf download {repo_id}`, copy the cache or the directory "
        "here and pass its path."
    )


@contextmanager
def no_safetensors_conversion() -> Iterator[None]:
    """Within the block, transformers does not convert a hub repo without safetensors weights.

    Its default is to ask the hub's conversion Space (with the user's token) to open a pull
    request with safetensors weights, then load from that pull request: ``load_model`` starts
    no jobs on the hub and loads only what the repository's owner published, so it says how to
    convert instead. The variable is read by transformers at call time; it is put back after.
    """
    previous = os.environ.get(NO_CONVERSION_VARIABLE)
    os.environ[NO_CONVERSION_VARIABLE] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[NO_CONVERSION_VARIABLE]
        else:
            os.environ[NO_CONVERSION_VARIABLE] = previous
