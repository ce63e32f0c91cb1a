"""What the browser decodes from the widgets' messages, so tests check exactly what it
receives: the inverses of ``encode_pattern`` (widgets/_base.py) and ``view_message``
(widgets/_pattern_views.py)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def decode_pattern(
    meta: dict[str, Any], buffers: Sequence[bytes | memoryview]
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_pattern`: ``(row_scale [T], levels uint8 [T, T])``.

    Used by tests and benchmarks to check exactly what the browser receives.
    """
    n = int(meta["n_tokens"])
    row_scale = np.frombuffer(bytes(buffers[0]), dtype="<f4")
    data = bytes(buffers[1])
    if meta["encoding"] == "deflate":
        data = zlib.decompress(data)
    flat = np.frombuffer(data, dtype=np.uint8)
    levels = np.zeros((n, n), dtype=np.uint8)
    if meta["layout"] == "lower":
        levels[np.tril_indices(n)] = flat
    else:
        levels[:] = flat.reshape(n, n)
    return row_scale, levels


def dequantize(row_scale: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Weights as the browser computes them: ``levels * row_scale / 255``."""
    return levels.astype(np.float32) * (row_scale[:, None] / np.float32(255.0))


@dataclass(frozen=True)
class DecodedView:
    """What the browser decodes from a ``view`` message (tests and benchmarks)."""

    values: np.ndarray
    row_edges: np.ndarray
    col_edges: np.ndarray
    arg_query: np.ndarray | None
    arg_key: np.ndarray | None


def decode_view(content: dict[str, Any], buffers: Sequence[bytes | memoryview]) -> DecodedView:
    """Inverse of :func:`view_message`; argmax offsets back to absolute positions (-1 = empty)."""
    raw = [
        zlib.decompress(bytes(b)) if enc == "deflate" else bytes(b)
        for b, enc in zip(buffers, content["encodings"], strict=True)
    ]
    panels, rows, cols = content["n_panels"], content["n_rows"], content["n_cols"]
    values = np.frombuffer(raw[0], dtype="<f4").reshape(panels, rows, cols)
    row_edges = np.frombuffer(raw[1], dtype="<i4").astype(np.int64)
    col_edges = np.frombuffer(raw[2], dtype="<i4").astype(np.int64)
    arg_q = arg_k = None
    if len(raw) == 5:
        dtype = np.dtype(content["arg_dtype"]).newbyteorder("<")
        empty = np.iinfo(dtype).max
        q_off = np.frombuffer(raw[3], dtype=dtype).reshape(panels, rows, cols).astype(np.int64)
        k_off = np.frombuffer(raw[4], dtype=dtype).reshape(panels, rows, cols).astype(np.int64)
        arg_q = np.where(q_off == empty, -1, q_off + row_edges[:-1, None])
        arg_k = np.where(k_off == empty, -1, k_off + col_edges[None, :-1])
    return DecodedView(values, row_edges, col_edges, arg_q, arg_k)
