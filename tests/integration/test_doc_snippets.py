"""Every ```python block in README.md and docs/*.md runs exactly as written.

A page's blocks run in order in one namespace, the way a reader pastes them into one notebook,
in a temporary working directory (files the snippets save land there) with ``display``
recording what would be shown. ```text blocks are signatures and listings, not run. Hub ids
are answered by the fake hub of ``tests/fake_hub.py`` (the bundled model under every short
name's hub id); nothing can reach the internet. Blocks that begin ``# needs the real
checkpoint`` run in tests/integration/test_gguf_loading.py instead. docs/loading.md has its own
runner with more set-up (``tests/integration/test_hub_loading.py``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests._real_model import REAL_CHECKPOINT
from tests.fake_hub import hub_for_tests

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OWN_RUNNER = {ROOT / "docs" / "loading.md", ROOT / "docs" / "chat.md"}  # chat.md: test_chat_real.py
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[str]:
    blocks = _BLOCK.findall(page.read_text(encoding="utf-8"))
    return [block for block in blocks if not block.startswith(REAL_CHECKPOINT)]


def test_the_pages_hold_snippets() -> None:
    """Guards the extraction itself: a broken regex would make every page pass vacuously."""
    assert len(python_blocks(ROOT / "README.md")) >= 1
    assert sum(len(python_blocks(page)) for page in PAGES) >= 5


# pages whose snippets take more than ~5 s on 2 cores: the whole suite runs them, the fast
# tier does not (probing.md starts a two-worker Dask cluster, compare.md fine-tunes,
# features_training.md trains two SAEs: 11 s alone, 30 s beside other runs)
SLOW_PAGES = {
    ROOT / "docs" / "probing.md",
    ROOT / "docs" / "compare.md",
    ROOT / "docs" / "features_training.md",
    ROOT / "docs" / "graphs.md",  # trains three transcoders: 14 s beside other runs
}


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(p, marks=[pytest.mark.slow] if p in SLOW_PAGES else [])
        for p in PAGES
        if python_blocks(p) and p not in OWN_RUNNER
    ],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_page_snippets_run_as_written(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from llmasos_widgets.models import BUNDLED_MODELS, SHORT_NAMES

    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()  # a page may set its own (docs/graphs.md: one)
    try:
        with hub_for_tests(monkeypatch, tmp_path) as hub:
            for hub_id in SHORT_NAMES.values():
                hub.add(hub_id, BUNDLED_MODELS["tiny-llama"])
            _run_blocks(page)
    finally:
        torch.set_num_threads(threads)


def _run_blocks(page: Path) -> None:
    shown: list[Any] = []
    namespace: dict[str, Any] = {"__name__": "__snippet__", "display": lambda *o: shown.extend(o)}
    for index, block in enumerate(python_blocks(page)):
        code = compile(block, f"{page.name} block {index + 1}", "exec")
        exec(code, namespace)
    for obj in shown:
        close = getattr(obj, "close", None)
        if callable(close):
            close()
