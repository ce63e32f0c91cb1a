"""Every ```python block in README.md and docs/*.md runs exactly as written.

A page's blocks run in order in one namespace, the way a reader pastes them into one notebook,
in a temporary working directory (files the snippets save land there) with ``display``
recording what would be shown. ```text blocks are signatures and listings, not run. The hub
is offline here (``HF_HUB_OFFLINE=1``): no snippet may reach the network.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[str]:
    return _BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_pages_hold_snippets() -> None:
    """Guards the extraction itself: a broken regex would make every page pass vacuously."""
    assert len(python_blocks(ROOT / "README.md")) >= 1
    assert sum(len(python_blocks(page)) for page in PAGES) >= 5


@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_page_snippets_run_as_written(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing here may reach the real hub
    shown: list[Any] = []
    namespace: dict[str, Any] = {"__name__": "__snippet__", "display": lambda *o: shown.extend(o)}
    for index, block in enumerate(python_blocks(page)):
        code = compile(block, f"{page.name} block {index + 1}", "exec")
        exec(code, namespace)
    for obj in shown:
        close = getattr(obj, "close", None)
        if callable(close):
            close()
