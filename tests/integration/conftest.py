"""Fixtures shared by integration modules (the session-wide ones are in tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def bundled_transcoders(bundled) -> tuple[list[Any], list[Any]]:
    """``(transcoders, reports)`` of tests/_transcoders_known.py, trained once per session
    (13-25 s): the splice test and the bundled graphs share them. Treat them as read-only."""
    from tests._transcoders_known import train_bundled_transcoders

    return train_bundled_transcoders(bundled)
