"""A stand-in for ``tqdm.auto.tqdm`` that records each bar (the ``bars`` fixture of
tests/conftest.py), shared by the progress tests."""

from __future__ import annotations

from typing import Any, ClassVar


class RecordingBar:
    """Records what a bar was created with and every count it showed."""

    made: ClassVar[list[RecordingBar]] = []

    def __init__(self, *, total: int, desc: str, **_: Any) -> None:
        self.total, self.desc, self.n, self.updates, self.closed = total, desc, 0, [], False
        RecordingBar.made.append(self)

    def update(self, n: int) -> None:
        self.n += n
        self.updates.append(self.n)

    def close(self) -> None:
        self.closed = True
