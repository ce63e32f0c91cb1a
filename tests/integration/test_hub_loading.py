"""load_model with hub ids, against a fake hub on localhost: the real huggingface_hub and
transformers download code runs, but no test can reach the internet (non-loopback connections
and name lookups fail the test)."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest
import torch

from llmasos_widgets import load_model
from llmasos_widgets.models import (
    SHORT_NAMES,
    GatedModelError,
    ModelNotFoundError,
    UnsupportedCheckpointError,
)
from tests.conftest import random_llama, word_tokenizer
from tests.fake_hub import hub_for_tests

DOCS = Path(__file__).parents[2] / "docs" / "loading.md"


@pytest.fixture(autouse=True)
def hub(monkeypatch, tmp_path):
    """A fake hub that huggingface_hub and transformers talk to, an empty cache, no token."""
    with hub_for_tests(monkeypatch, tmp_path) as fake:
        yield fake


@pytest.fixture
def checkpoint(tmp_path):
    """A random 2-layer LLaMA saved with its tokenizer: ``(directory, in-memory model)``."""
    directory = tmp_path / "checkpoint"
    hf_model = random_llama(seed=7)
    hf_model.save_pretrained(directory)
    word_tokenizer().save_pretrained(directory)
    return directory, hf_model


def _logits(model, text: str = "w1 w2 w3 w4") -> torch.Tensor:
    with torch.no_grad():
        return model.hf_model(model.encode(text)).logits


def test_uncached_hub_id_is_downloaded_and_matches_the_source(hub, checkpoint):
    directory, source = checkpoint
    hub.add("some-org/tiny", directory)
    model = load_model("some-org/tiny", device="cpu")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(
        hub.downloads("some-org/tiny")
    )
    assert model.name == "some-org/tiny"
    ids = model.encode("w1 w2 w3 w4")
    with torch.no_grad():
        assert torch.equal(model.hf_model(ids).logits, source(ids).logits)


def test_downloads_show_the_hubs_progress_bars(hub, checkpoint, capfd, monkeypatch):
    """load_model does not silence huggingface_hub's bars (tqdm hides them without a terminal;
    TQDM_POSITION=-1 is huggingface_hub's switch to show them anyway)."""
    monkeypatch.setenv("TQDM_POSITION", "-1")
    hub.add("some-org/tiny", checkpoint[0])
    load_model("some-org/tiny", device="cpu")
    assert re.search(r"model\.safetensors: 100%\|█+\|", capfd.readouterr().err)


def test_a_downloaded_hub_id_is_not_downloaded_again(hub, checkpoint):
    hub.add("some-org/tiny", checkpoint[0])
    first = load_model("some-org/tiny", device="cpu")
    second = load_model("some-org/tiny", device="cpu")
    assert hub.downloads("some-org/tiny").count("model.safetensors") == 1
    assert torch.equal(_logits(first), _logits(second))


@pytest.mark.parametrize(
    ("variable", "value", "options"),
    [
        pytest.param("HF_HUB_OFFLINE", "1", {}, id="HF_HUB_OFFLINE-set-after-import"),
        pytest.param("TRANSFORMERS_OFFLINE", "yes", {}, id="TRANSFORMERS_OFFLINE"),
        pytest.param(None, None, {"local_files_only": True}, id="local_files_only"),
    ],
)
def test_offline_uncached_hub_id_says_hf_download_and_asks_nothing(
    hub, checkpoint, monkeypatch, variable, value, options
):
    hub.add("some-org/tiny", checkpoint[0])
    if variable is not None:
        monkeypatch.setenv(variable, value)
    with pytest.raises(ModelNotFoundError, match=r"offline.*`hf download some-org/tiny`"):
        load_model("some-org/tiny", device="cpu", **options)
    assert hub.requests == []


def test_offline_a_cached_hub_id_loads_without_a_request(hub, checkpoint, monkeypatch):
    hub.add("some-org/tiny", checkpoint[0])
    online = load_model("some-org/tiny", device="cpu")
    requests_online = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = load_model("some-org/tiny", device="cpu")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    cached_only = load_model("some-org/tiny", device="cpu", local_files_only=True)
    assert len(hub.requests) == requests_online
    assert torch.equal(_logits(offline), _logits(online))
    assert torch.equal(_logits(cached_only), _logits(online))


def test_offline_with_only_the_config_cached_says_hf_download(hub, checkpoint, monkeypatch):
    """A half-cached repo (say, an interrupted download) is not mistaken for one without
    safetensors weights."""
    from huggingface_hub import hf_hub_download

    hub.add("some-org/tiny", checkpoint[0])
    hf_hub_download("some-org/tiny", "config.json")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="offline.*`hf download some-org/tiny`"):
        load_model("some-org/tiny", device="cpu")


def test_gated_repo_without_a_token_says_how_to_log_in(hub, checkpoint):
    hub.add("meta-llama/Llama-2-7b-hf", checkpoint[0], gated=True)
    with pytest.raises(GatedModelError) as raised:
        load_model("llama-2-7b", device="cpu")
    message = str(raised.value)
    assert "no Hugging Face token" in message
    assert "https://huggingface.co/meta-llama/Llama-2-7b-hf" in message
    assert "accept the licence" in message
    assert "`hf auth login`" in message and "HF_TOKEN" in message
    assert hub.downloads("meta-llama/Llama-2-7b-hf") == []


def test_gated_repo_with_a_token_says_the_licence_is_not_accepted(hub, checkpoint, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_the_fake_hub")
    hub.add("meta-llama/Llama-2-7b-hf", checkpoint[0], gated=True)
    with pytest.raises(GatedModelError, match="token on this machine has no access to it yet"):
        load_model("meta-llama/Llama-2-7b-hf", device="cpu")


def test_repo_that_does_not_exist_lists_the_short_names(hub):
    with pytest.raises(ModelNotFoundError) as raised:
        load_model("some-org/no-such-model", device="cpu")
    assert not isinstance(raised.value, GatedModelError)
    message = str(raised.value)
    assert "'some-org/no-such-model' was not found on the Hugging Face hub" in message
    assert all(short in message for short in SHORT_NAMES)


def test_unreachable_hub_says_so_and_how_to_copy_the_files(monkeypatch):
    import types

    import huggingface_hub.utils._http as hub_http
    from huggingface_hub import constants

    waits: list[float] = []  # huggingface_hub's backoff waits, recorded instead of slept
    monkeypatch.setattr(hub_http, "time", types.SimpleNamespace(sleep=waits.append))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused at once
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    try:
        with pytest.raises(ModelNotFoundError, match=r"could not reach.*hf download some-org/x"):
            load_model("some-org/x", device="cpu")
    finally:
        closed.close()
    assert waits == [1, 2, 4, 8, 8]  # what a user without HF_HUB_OFFLINE=1 waits, in seconds


@pytest.mark.parametrize("wrapped", [False, True], ids=["raw", "wrapped-by-transformers"])
def test_gated_error_is_recognised_raw_or_wrapped_in_oserror(wrapped):
    from huggingface_hub.errors import GatedRepoError
    from huggingface_hub.utils import httpx

    from llmasos_widgets.models._hub import hub_errors

    response = httpx.Response(401, request=httpx.Request("GET", "http://127.0.0.1/x"))
    gated = GatedRepoError("401 Client Error: gated", response=response)
    with (
        pytest.raises(GatedModelError, match="hf auth login") as raised,
        hub_errors("org/x", offline=False),
    ):
        if not wrapped:
            raise gated
        try:
            raise gated
        except GatedRepoError as error:
            raise OSError("You are trying to access a gated repo.") from error
    assert type(raised.value.__cause__) is (OSError if wrapped else GatedRepoError)


@pytest.mark.parametrize(("short", "hub_id"), sorted(SHORT_NAMES.items()))
def test_short_name_loads_its_hub_id_and_keeps_the_name_typed(hub, checkpoint, short, hub_id):
    hub.add(hub_id, checkpoint[0])
    model = load_model(short, device="cpu")
    assert model.name == short
    assert "model.safetensors" in hub.downloads(hub_id)
    assert {path.split("/resolve/")[0] for _, path in hub.requests if "/resolve/" in path} == {
        f"/{hub_id}"
    }


def test_llama_7b_is_huggyllama_not_a_suggestion(hub, checkpoint):
    """``llama-7b`` once answered "did you mean 'llama-2-7b'"; it is LLaMA-1 7B on the hub."""
    hub.add("huggyllama/llama-7b", checkpoint[0])
    model = load_model("LLaMA-7B", device="cpu")
    assert model.name == "LLaMA-7B"
    assert "model.safetensors" in hub.downloads("huggyllama/llama-7b")
    assert not hub.asked_about("meta-llama/Llama-2-7b-hf")


def test_short_names_match_whatever_the_case(hub, checkpoint):
    hub.add("meta-llama/Llama-3.1-8B-Instruct", checkpoint[0])
    assert load_model("Llama-3.1-8B-Instruct", device="cpu").name == "Llama-3.1-8B-Instruct"


def test_quantized_checkpoint_on_the_hub_is_refused_after_its_config_only(hub, checkpoint):
    import json

    directory = checkpoint[0]
    config = json.loads((directory / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (directory / "config.json").write_text(json.dumps(config))
    hub.add("some-org/tiny-4bit", directory)
    with pytest.raises(UnsupportedCheckpointError, match="quantized with bitsandbytes.*bfloat16"):
        load_model("some-org/tiny-4bit", device="cpu")
    assert hub.downloads("some-org/tiny-4bit") == ["config.json"]


def test_hub_repo_with_only_pickled_weights_is_refused_without_fetching_them(
    hub, tmp_path, monkeypatch
):
    """transformers would ask the hub's conversion Space for a safetensors pull request (the
    network guard would fail the test); load_model turns that off for the call only."""
    monkeypatch.delenv("DISABLE_SAFETENSORS_CONVERSION", raising=False)
    hf_model = random_llama(seed=8)
    hf_model.config.save_pretrained(tmp_path / "bin-only")
    torch.save(hf_model.state_dict(), tmp_path / "bin-only" / "pytorch_model.bin")
    hub.add("some-org/bin-only", tmp_path / "bin-only")
    with pytest.raises(UnsupportedCheckpointError, match="no safetensors weights"):
        load_model("some-org/bin-only", device="cpu")
    assert "pytorch_model.bin" not in hub.downloads("some-org/bin-only")
    assert "DISABLE_SAFETENSORS_CONVERSION" not in os.environ


def _python_blocks(markdown: str) -> list[str]:
    """The page's python blocks but those run by tests/integration/test_gguf_loading.py."""
    from tests._real_model import REAL_CHECKPOINT

    blocks = re.findall(r"^```python\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)
    return [block for block in blocks if not block.startswith(REAL_CHECKPOINT)]


def test_docs_loading_snippets_run_as_written(hub, monkeypatch, tmp_path):
    """Every ``python`` block of docs/loading.md, in order, in one namespace. Hub ids are served
    by the fake hub: the bundled tiny model under every short name's hub id, Llama 2 gated."""
    from llmasos_widgets.models import BUNDLED_MODELS

    bundled = BUNDLED_MODELS["tiny-llama"]
    for hub_id in SHORT_NAMES.values():
        hub.add(hub_id, bundled, gated=hub_id == "meta-llama/Llama-2-7b-hf")
    old = tmp_path / "old-checkpoint"  # what the conversion example starts from
    source = load_model("tiny-llama")
    source.hf_model.config.save_pretrained(old)
    torch.save(source.hf_model.state_dict(), old / "pytorch_model.bin")
    source.tokenizer.save_pretrained(old)
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks(DOCS.read_text(encoding="utf-8"))
    assert len(blocks) == 8
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), namespace)
    assert hub.downloads("meta-llama/Llama-3.1-8B").count("model.safetensors") == 1


def test_docs_short_name_table_is_short_names():
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|$", DOCS.read_text(encoding="utf-8"), re.M)
    assert dict(rows) == SHORT_NAMES
