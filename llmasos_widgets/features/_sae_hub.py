"""SAE files from the Hugging Face hub, downloaded like ``load_model`` downloads models: into
the Hugging Face cache, only what the format needs, nothing when offline (``HF_HUB_OFFLINE``
read at call time, or ``local_files_only=True``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from llmasos_widgets.models import GatedModelError, ModelNotFoundError, hub_offline

# format -> (file that marks it, other files it needs, optional files)
HUB_FILES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "saelens": ("cfg.json", ("sae_weights.safetensors",), ("activation_scaler.json",)),
    "llama-scope": ("hyperparams.json", ("checkpoints/final.safetensors",), ()),
    "gemma-scope": ("params.npz", (), ()),
}


def split_hub_id(name: str, subfolder: str | None) -> tuple[str, str]:
    """``"owner/repo/path/in/repo"`` -> ``("owner/repo", "path/in/repo")``; ``subfolder=``
    is joined after that path."""
    owner, repo, *rest = name.strip("/").split("/")
    parts = [*rest, *(subfolder.strip("/").split("/") if subfolder else [])]
    return f"{owner}/{repo}", "/".join(p for p in parts if p)


def hub_fetcher(
    repo_id: str,
    subfolder: str,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    offline: bool,
) -> Callable[[str], Path]:
    """``fetch(filename)``: one file of ``repo_id/subfolder`` in the local cache (downloaded
    unless ``offline``); errors are the hub's own (map them with :func:`hub_errors`)."""
    from huggingface_hub import hf_hub_download

    def fetch(filename: str) -> Path:
        path = hf_hub_download(
            repo_id,
            filename,
            subfolder=subfolder or None,
            revision=revision,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            local_files_only=offline,
        )
        return Path(str(path))

    return fetch


@contextlib.contextmanager
def hub_errors(repo_id: str, subfolder: str, revision: str | None, offline: bool) -> Iterator[None]:
    """The hub's errors as the package's: gated and missing repositories, unreachable hub."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except GatedRepoError as error:
        raise GatedModelError(
            f"{repo_id!r} is a gated repository: accept its licence at "
            f"https://huggingface.co/{repo_id}, run `hf auth login`, then load again"
        ) from error
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise ModelNotFoundError(
            f"hub id {repo_id!r} (revision {revision or 'main'}) was not found on the Hugging "
            "Face hub; check the spelling, or run `hf auth login` for a private repository"
        ) from error
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as error:
        raise ModelNotFoundError(_unreachable(repo_id, subfolder, offline)) from error


def download_sae(
    repo_id: str,
    subfolder: str,
    *,
    formats: Sequence[str],
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool | None,
    files: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = HUB_FILES,
    what: str = "SAE",
) -> tuple[Path, str]:
    """``(local directory, format)``: the first of ``formats`` whose marker file the repo has
    under ``subfolder``, with the files that format needs downloaded beside it (``files``:
    format -> (marker, needed, optional), as :data:`HUB_FILES`; ``what`` they hold, for the
    error when none is there)."""
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    offline = hub_offline() or bool(local_files_only)
    where = f"{repo_id}/{subfolder}" if subfolder else repo_id
    fetch = hub_fetcher(repo_id, subfolder, revision=revision, cache_dir=cache_dir, offline=offline)
    with hub_errors(repo_id, subfolder, revision, offline):
        for name in formats:
            marker, needed, optional = files[name]
            try:
                found = fetch(marker)
            except LocalEntryNotFoundError:
                if not offline:
                    raise  # not a missing file: the hub could not be reached
                continue  # offline: another format may be the one cached
            except EntryNotFoundError:
                continue
            for filename in needed:
                fetch(filename)
            for filename in optional:
                with contextlib.suppress(EntryNotFoundError):  # offline too: it is optional
                    fetch(filename)
            return found.parent, name
    if offline:
        raise ModelNotFoundError(_unreachable(repo_id, subfolder, offline))
    expected = ", ".join(f"{files[n][0]} ({n})" for n in formats)
    raise ValueError(f"hub path {where!r} holds no {what}: expected one of {expected}")


def _unreachable(repo_id: str, subfolder: str, offline: bool) -> str:
    where = f"{repo_id}/{subfolder}" if subfolder else repo_id
    if offline:
        include = f" --include '{subfolder}/*'" if subfolder else ""
        return (
            f"{where!r} is not (completely) in the local Hugging Face cache and this session "
            "is offline (HF_HUB_OFFLINE=1 or local_files_only=True). On a machine with "
            f"internet run `hf download {repo_id}{include}` and copy the cache here, or go "
            "online to let load_sae download it."
        )
    return (
        f"could not reach the Hugging Face hub for {where!r} and it is not in the local "
        "cache; check the connection (and HTTPS_PROXY) or pass a local path"
    )
