"""Equality of causal results as a saved file must keep them (tests of interventions/_files.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def assert_same(a: Any, b: Any, name: str = "") -> None:
    """Field by field (results nested in results too): arrays bitwise with the same dtype,
    other values equal and of one type."""
    assert type(a) is type(b), (name, type(a), type(b))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        for spec in dataclasses.fields(a):
            if not spec.name.startswith("_"):
                assert_same(getattr(a, spec.name), getattr(b, spec.name), f"{name}.{spec.name}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), name  # bitwise: NaN included
    elif isinstance(a, tuple | list):
        assert len(a) == len(b), name
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{name}[{index}]")
    else:
        assert a == b, (name, a, b)
