"""Level-of-detail pattern views: the ``request_view`` / ``view`` messages of AttentionWidget.

The pattern view in the browser (``js/src/lib/pattern_view.ts``) never receives more cells than
it paints. It asks for the region it shows -- query rows ``[q0, q1)``, key columns ``[k0, k1)``
-- at its pixel resolution ``shape = (h, w)``; the kernel answers with the region pooled into
at most ``h x w`` blocks by ``Explanation.pooled_attention`` (computed block by block from q/k,
never as ``[T, T]``), so bytes depend on the screen, not on T.

Reply ``{"type": "view", request_id, layer, heads, combine, rows, cols, reduce, exact,
n_rows, n_cols, n_panels, arg_dtype, encodings}`` with buffers, each zlib-deflated when that
is smaller (``encodings[i]`` is "deflate" or "raw"):

* ``values``: float32 ``[n_panels, n_rows, n_cols]`` -- the pooled weight per block (max, or sum
  of the block's weights); panels are the heads side by side, or one panel, their mean;
* ``row_edges``, ``col_edges``: int32 ``[n_rows + 1]``, ``[n_cols + 1]`` block edges (token
  positions; block ``r`` holds queries ``row_edges[r]:row_edges[r + 1]``);
* only when not ``exact`` and ``reduce == "max"``: ``arg_query``, ``arg_key`` ``[n_panels,
  n_rows, n_cols]`` -- each block's argmax as an offset from the block's first row / column,
  in ``arg_dtype`` (uint8 / uint16 / int32, the smallest that holds the largest block); the
  dtype's largest value marks an empty (fully masked) block.

Bytes: the kernel pools more coarsely than asked when the asked shape would not fit
:data:`VIEW_BYTES` (:func:`capped`); ``n_rows``/``n_cols`` and the edges say what was sent.

Mirror: ``js/src/lib/pattern_lod.ts::decodeViewMessage``.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

MAX_VIEW_CELLS = 1 << 20
"""Most cells one view may ask for (a 2x HiDPI canvas of 512 CSS pixels; one row of 1M keys)."""

VIEW_BYTES = 512_000
"""Most bytes of one ``view`` message of one panel (a head, or the mean of heads): the kernel
pools more coarsely than asked when the asked shape would not fit (float32 values + two
argmax offsets: ~6 B per block, so ~290 x 290 blocks; exact cells: 4 B, ~357 x 357); the
canvas upsamples, and exact cells stay one zoom away."""
PANELS_BYTES = 4_000_000
"""Most bytes of a side-by-side message (every head of a layer at view resolution)."""
CACHED_VIEWS = 8
"""``view`` replies a widget keeps (:class:`ViewCache`)."""
HEADER_BYTES = 2048
"""Allowance for the message's JSON content (~400 B, more with many heads)."""

REDUCTIONS = ("max", "sum")
COMBINES = ("mean", "each")


@dataclass(frozen=True, kw_only=True)
class ViewRequest:
    """One ``request_view`` message, validated against the widget's dimensions."""

    request_id: int
    layer: int
    heads: tuple[int, ...]
    rows: tuple[int, int]
    cols: tuple[int, int]
    shape: tuple[int, int]
    reduce: str = "max"
    combine: str = "mean"

    @classmethod
    def parse(cls, content: dict[str, Any], *, n_tokens: int) -> ViewRequest:
        rows = (int(content["rows"][0]), int(content["rows"][1]))
        cols = (int(content["cols"][0]), int(content["cols"][1]))
        shape = (int(content["shape"][0]), int(content["shape"][1]))
        for name, (a, b) in (("rows", rows), ("cols", cols)):
            if not 0 <= a < b <= n_tokens:
                raise ValueError(f"{name}={[a, b]} must satisfy 0 <= start < stop <= {n_tokens}")
        if min(shape) < 1 or shape[0] * shape[1] > MAX_VIEW_CELLS:
            raise ValueError(
                f"shape={list(shape)} must have sides >= 1 and at most {MAX_VIEW_CELLS} cells"
            )
        reduce = str(content.get("reduce", "max"))
        combine = str(content.get("combine", "mean"))
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce={reduce!r}; valid: {', '.join(REDUCTIONS)}")
        if combine not in COMBINES:
            raise ValueError(f"combine={combine!r}; valid: {', '.join(COMBINES)}")
        heads = tuple(int(h) for h in content["heads"])
        if not heads:
            raise ValueError("heads must name at least one head")
        return cls(
            request_id=int(content["request_id"]),
            layer=int(content["layer"]),
            heads=heads,
            rows=rows,
            cols=cols,
            shape=shape,
            reduce=reduce,
            combine=combine,
        )


def requested_pooled_patterns(explanation: Any, request: ViewRequest) -> list[Any]:
    """``PooledPattern`` per requested head (``Explanation.pooled_attention``);
    one ``pooled_layer_attention`` call when most of the layer's heads are asked for."""
    kwargs = {
        "rows": request.rows,
        "cols": request.cols,
        "shape": request.shape,
        "reduce": request.reduce,
    }
    layer_call = getattr(explanation, "pooled_layer_attention", None)
    if layer_call is not None and 2 * len(request.heads) > int(explanation.n_heads):
        every = layer_call(request.layer, **kwargs)
        return [every[h] for h in request.heads]
    pooled = getattr(explanation, "pooled_attention", None)
    if pooled is None:
        raise TypeError(
            f"{type(explanation).__name__} has no pooled_attention(); the pattern view needs "
            "an Explanation (llmasos_widgets.explain) or an object with pooled_attention"
        )
    return [pooled(request.layer, h, **kwargs) for h in request.heads]


def _arg_dtype(row_edges: np.ndarray, col_edges: np.ndarray) -> np.dtype[Any]:
    largest = max(int(np.diff(row_edges).max()), int(np.diff(col_edges).max()))
    for dtype in (np.uint8, np.uint16):
        if largest < np.iinfo(dtype).max:  # the dtype's max stays free for "empty"
            return np.dtype(dtype)
    return np.dtype(np.int32)


def _offsets(arg: np.ndarray, starts: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    empty = np.iinfo(dtype).max
    out = np.where(arg >= 0, arg - starts, empty)
    return out.astype(dtype.newbyteorder("<"))


def _blocks(span: int, asked: int) -> tuple[int, int]:
    """(most blocks, largest block) when ``span`` tokens are pooled into at most ``asked``."""
    n = min(span, asked)
    return n, -(-span // n) + 1  # +1: pooling that rounds its edges (not block_edges)


def byte_bound(request: ViewRequest, shape: tuple[int, int]) -> int:
    """An upper bound on the raw (undeflated) size of the ``view`` message at ``shape``."""
    rows, row_block = _blocks(request.rows[1] - request.rows[0], shape[0])
    cols, col_block = _blocks(request.cols[1] - request.cols[0], shape[1])
    panels = len(request.heads) if request.combine == "each" else 1
    exact = shape[0] >= request.rows[1] - request.rows[0] and shape[1] >= (
        request.cols[1] - request.cols[0]
    )
    per_cell = 4
    if not exact and request.reduce == "max":
        largest = (np.array([0, row_block]), np.array([0, col_block]))
        per_cell += 2 * _arg_dtype(*largest).itemsize
    return panels * rows * cols * per_cell + 4 * (rows + cols + 2) + HEADER_BYTES


def byte_budget(request: ViewRequest) -> int:
    panels = len(request.heads) if request.combine == "each" else 1
    return VIEW_BYTES if panels == 1 else min(PANELS_BYTES, panels * VIEW_BYTES)


def capped(request: ViewRequest) -> ViewRequest:
    """``request`` at the largest shape (same aspect) whose message fits :func:`byte_budget`."""
    budget, shape = byte_budget(request), request.shape
    while byte_bound(request, shape) > budget and max(shape) > 1:
        over = byte_bound(request, shape) / budget
        shrink = min(0.99, over**-0.5)
        shape = (max(1, int(shape[0] * shrink)), max(1, int(shape[1] * shrink)))
    return request if shape == request.shape else replace(request, shape=shape)


def view_message(explanation: Any, request: ViewRequest) -> tuple[dict[str, Any], list[bytes]]:
    """The ``view`` reply (content, buffers) for one request; see the module docstring.
    The shape is first :func:`capped` so the message stays within :data:`VIEW_BYTES`."""
    request = capped(request)
    pooled = requested_pooled_patterns(explanation, request)
    first = pooled[0]
    row_edges = np.asarray(first.row_edges, dtype=np.int64)
    col_edges = np.asarray(first.col_edges, dtype=np.int64)
    values = np.stack([np.asarray(p.values, dtype=np.float32) for p in pooled])
    exact = bool(all(p.exact for p in pooled))
    with_arg = not exact and request.reduce == "max"
    arg_q = arg_k = None
    if with_arg:
        arg_q = np.stack([np.asarray(p.argmax_query, dtype=np.int64) for p in pooled])
        arg_k = np.stack([np.asarray(p.argmax_key, dtype=np.int64) for p in pooled])
    if request.combine == "mean" and len(pooled) > 1:
        if arg_q is not None and arg_k is not None:
            # the mean's block holds the cell of the head whose block max is largest
            best = values.argmax(axis=0)[None]
            arg_q = np.take_along_axis(arg_q, best, axis=0)
            arg_k = np.take_along_axis(arg_k, best, axis=0)
        values = values.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    buffers = [
        values.astype("<f4").tobytes(),
        row_edges.astype("<i4").tobytes(),
        col_edges.astype("<i4").tobytes(),
    ]
    arg_dtype = _arg_dtype(row_edges, col_edges)
    if arg_q is not None and arg_k is not None:
        buffers.append(_offsets(arg_q, row_edges[:-1, None], arg_dtype).tobytes())
        buffers.append(_offsets(arg_k, col_edges[None, :-1], arg_dtype).tobytes())
    packed, encodings = [], []
    for raw in buffers:
        deflated = zlib.compress(raw, 1)
        smaller = len(deflated) < len(raw)
        packed.append(deflated if smaller else raw)
        encodings.append("deflate" if smaller else "raw")
    content = {
        "type": "view",
        "request_id": request.request_id,
        "layer": request.layer,
        "heads": list(request.heads),
        "combine": request.combine,
        "rows": list(request.rows),
        "cols": list(request.cols),
        "reduce": request.reduce,
        "exact": exact,
        "n_rows": int(values.shape[1]),
        "n_cols": int(values.shape[2]),
        "n_panels": int(values.shape[0]),
        "arg_dtype": arg_dtype.name,
        "encodings": encodings,
    }
    return content, packed


class ViewCache:
    """The last :data:`CACHED_VIEWS` ``view`` replies of a widget, keyed by what was asked (not
    the request id), so going back -- zoom out, reset, another head and back -- costs no
    recomputation (at T = 32k and head dim 128 a whole view is seconds on a CPU). At most
    ``CACHED_VIEWS x`` :data:`PANELS_BYTES`; thread-safe; :meth:`clear` on close."""

    def __init__(self, size: int | None = None) -> None:
        self.size = CACHED_VIEWS if size is None else size
        self._replies: OrderedDict[tuple[Any, ...], tuple[dict[str, Any], list[bytes]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        self.hits = 0

    @staticmethod
    def key(request: ViewRequest) -> tuple[Any, ...]:
        return (request.layer, request.heads, request.rows, request.cols, request.shape,
                request.reduce, request.combine)  # fmt: skip

    def reply(self, explanation: Any, request: ViewRequest) -> tuple[dict[str, Any], list[bytes]]:
        """:func:`view_message` of ``request``, from the cache when the same view was sent."""
        key = self.key(request)
        with self._lock:
            cached = self._replies.get(key)
            if cached is not None:
                self._replies.move_to_end(key)
                self.hits += 1
        if cached is None:  # computed outside the lock: a slow view blocks no other reader
            cached = view_message(explanation, request)
            with self._lock:
                self._replies[key] = cached
                while len(self._replies) > self.size:
                    self._replies.popitem(last=False)
        content, buffers = cached
        return {**content, "request_id": request.request_id}, list(buffers)

    def clear(self) -> None:
        with self._lock:
            self._replies.clear()

    def __len__(self) -> int:
        return len(self._replies)
