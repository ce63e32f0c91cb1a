"""Equality of causal results as a saved file must keep them (tests of interventions/_files.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def assert_same(a: Any, b: Any) -> None:
    """Field by field: arrays bitwise with the same dtype, other values equal and of one type."""
    assert type(a) is type(b)
    for spec in dataclasses.fields(a):
        if spec.name.startswith("_"):
            continue
        x, y = getattr(a, spec.name), getattr(b, spec.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, spec.name
            assert x.tobytes() == y.tobytes(), spec.name  # bitwise: NaN included
        else:
            assert x == y and type(x) is type(y), (spec.name, x, y)
