"""Shared fixtures: small random-init models with a word-level tokenizer, and the bundled model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

WORDS = [f"w{i}" for i in range(60)]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow-tier",
        action="store_true",
        help="also run the tests marked slow_tier (`bash scripts/test.sh --slow` runs only them)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tier is skipped unless asked for: each of its tests repeats, at a larger size, a
    test the whole suite runs (its docstring names which)."""
    if config.getoption("--slow-tier"):
        return
    skip = pytest.mark.skip(reason="slow tier: run with `bash scripts/test.sh --slow`")
    for item in items:
        if "slow_tier" in item.keywords:
            item.add_marker(skip)


def word_tokenizer(words: list[str] = WORDS):
    """A word-level fast tokenizer that prepends <bos>, like the bundled model's."""
    from tests._tokenizers import WORD_SPECIALS, word_level_tokenizer

    return word_level_tokenizer([*WORD_SPECIALS, *words], max_length=64)


def random_llama(*, layers: int = 2, heads: int = 4, kv_heads: int = 2, seed: int = 0, **extra):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(WORDS) + 4,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=64,
        attn_implementation="sdpa",
        **extra,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture
def tiny_random():
    """An ``ExplainableModel`` around a random-init 2-layer GQA LLaMA (fresh per test)."""
    from llmasos_widgets.models import as_explainable

    return as_explainable(random_llama(), word_tokenizer())


@pytest.fixture(scope="session")
def bundled():
    """The bundled tiny LLaMA, loaded once per session through the public loader."""
    from llmasos_widgets import load_model

    return load_model("tiny-llama", device="cpu")


@pytest.fixture
def bars(monkeypatch):
    """The progress bars created during the test: ``tqdm.auto.tqdm`` replaced by
    tests/_progress_bars.RecordingBar."""
    import tqdm.auto

    from tests._progress_bars import RecordingBar

    RecordingBar.made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    return RecordingBar.made


@pytest.fixture(scope="session")
def real_model():
    """SmolLM2-135M-Instruct (tests/_real_model.py), dequantized once and cached, float32."""
    from llmasos_widgets import load_model
    from tests._real_model import smollm2_checkpoint

    return load_model(str(smollm2_checkpoint()), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """A Dask cluster of two worker processes (one thread each), shared by the session's
    distributed tests: starting one took ~20 s on 2 CPU cores."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


# One Chromium per session, shared by tests/browser and tests/install: Playwright's sync API
# cannot run a second instance while this one is open.
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright (tests/_chromium.py); missing is a failure."""
    from tests._chromium import CHROMIUM, chromium_found, launch_chromium

    if not chromium_found():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need it. Install it with "
            "`apt-get install -y chromium` (scripts/test.sh does) or point $LLMW_CHROMIUM at a "
            "Chromium binary. Deselect with -m 'not browser' only when you mean to."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:  # pragma: no cover - the test extra installs it
        pytest.fail(f"the Python package playwright is missing ({err}); run scripts/setup.sh")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()
