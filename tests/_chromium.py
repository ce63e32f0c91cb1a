"""The one Chromium launch shared by the browser tests and ``bench/bench_widget_browser.py``.

Debian's Chromium (``/usr/bin/chromium`` or ``$LLMW_CHROMIUM``), headless, with everything that
would reach the network at start-up turned off, so tests and benches measure the same browser.
"""

from __future__ import annotations

import os
from typing import Any

CHROMIUM = os.environ.get("LLMW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_found() -> bool:
    return os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)


def launch_chromium(playwright: Any, **kwargs: Any) -> Any:
    """``playwright.chromium.launch`` of :data:`CHROMIUM` with :data:`CHROMIUM_ARGS`."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, **kwargs
    )
