"""Progress of one ``attribute`` call: a ``tqdm.auto`` bar for calls that take a while.

The work is known before the call starts (``AttributionMethod.work``: sites × steps ×
passes); the bar counts it, and its label says what it is. A bar that appeared for every
call would flood a notebook that attributes hundreds of prompts in a loop, so the bar is
created only once the call has run for :data:`PROGRESS_DELAY_S` seconds (at the first
progress report after that): a call that finishes sooner shows nothing, and neither does one
whose first report is its last (a single pass: ``gradient``, ``input_x_gradient``, or occlusion
of a short text in one batch): its bar would appear with nothing left to wait for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

PROGRESS_DELAY_S = 2.0
"""Seconds a call runs before its progress bar appears."""
_clock = time.monotonic  # the tests stop it to make "a short call" independent of the load


class ProgressBar:
    """Called with the fraction done (as ``attribute``'s ``progress`` callbacks are); shows a
    ``tqdm.auto`` bar of ``total`` units labelled ``label`` once the call is older than
    :data:`PROGRESS_DELAY_S`."""

    def __init__(self, total: int, label: str, *, delay: float | None = None) -> None:
        self.total = int(total)
        self.label = label
        self.delay = PROGRESS_DELAY_S if delay is None else delay
        self.start = _clock()
        self.bar: Any = None

    def __call__(self, fraction: float) -> None:
        done = min(self.total, round(fraction * self.total))
        if self.bar is None:
            # not before the delay, and not for a call whose first report is its last
            if done >= self.total or _clock() - self.start < self.delay:
                return
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.label, unit="eval")
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_reporter(
    progress: bool | Callable[[float], None] | None, total: int, label: str
) -> tuple[Callable[[float], None] | None, ProgressBar | None]:
    """``(callback for the method, bar to close)`` for ``attribute``'s ``progress`` argument:
    ``True`` a :class:`ProgressBar`, a callable itself (no bar), ``False``/``None`` nothing."""
    if progress is True:
        bar = ProgressBar(total, label)
        return bar, bar
    if progress is False or progress is None:
        return None, None
    if not callable(progress):
        raise TypeError(f"progress must be True, False or a callable, got {progress!r}")
    return progress, None
