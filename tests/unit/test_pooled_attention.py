"""Pooled attention (issue 11): known answers against the exact pattern, at T where it fits,
and a planted long-range peak at T = 32768 found by zooming (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmasos_widgets.explanation import Explanation
from llmasos_widgets.explanation._lens import LensRows
from llmasos_widgets.tracing import AttentionSpec, TileStats, attention_pattern, row_statistics
from llmasos_widgets.views import (
    block_edges,
    flow_values,
    pooled_patterns_from_qk,
    pooled_view,
)
from tests._attention_flow import attention_flow


def synthetic_explanation(
    queries: list[torch.Tensor], keys: list[torch.Tensor], specs: list[AttentionSpec]
) -> Explanation:
    """An Explanation around given q/k; token-level fields are placeholders."""
    n_tokens, n_layers = queries[0].shape[1], len(queries)
    return Explanation(
        model_name="synthetic",
        tokens=tuple(f"t{i}" for i in range(n_tokens)),
        token_ids=np.zeros(n_tokens, np.int64),
        queries=tuple(queries),
        keys=tuple(keys),
        specs=tuple(specs),
        head_summaries={},
        top_token_ids=np.zeros((n_tokens, 1), np.int64),
        top_probs=np.zeros((n_tokens, 1), np.float32),
        top_tokens=tuple(("t0",) for _ in range(n_tokens)),
        logit_lens=LensRows.of_arrays(
            np.zeros((n_layers + 1, n_tokens), np.int64),
            np.zeros((n_layers + 1, n_tokens), np.float32),
            tuple(tuple("t0" for _ in range(n_tokens)) for _ in range(n_layers + 1)),
        ),
    )


def random_qk(n_tokens: int, heads: int, kv_heads: int, dim: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(heads, n_tokens, dim, generator=generator)
    k = torch.randn(kv_heads, n_tokens, dim, generator=generator)
    return q, k


def pool_exact(pattern: np.ndarray, rows, cols, row_edges, col_edges, reduce: str) -> np.ndarray:
    region = pattern[rows[0] : rows[1], cols[0] : cols[1]]
    r_e, c_e = row_edges[:-1] - rows[0], col_edges[:-1] - cols[0]
    fn = np.maximum if reduce == "max" else np.add  # reduceat: each block [edge, next edge)
    return fn.reduceat(fn.reduceat(region, r_e, axis=0), c_e, axis=1)


SPECS = {
    "mha": (AttentionSpec(scaling=0.25), 3, 3),
    "gqa+window": (AttentionSpec(scaling=0.25, sliding_window=7, n_kv_groups=2), 4, 2),
    "gqa+softcap": (AttentionSpec(scaling=0.4, softcap=2.0, n_kv_groups=3), 6, 2),
}


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("n_tokens", [1, 17, 61])
@pytest.mark.parametrize("reduce", ["max", "sum"])
def test_pooled_values_equal_pooling_of_the_exact_pattern(name, n_tokens, reduce) -> None:
    spec, heads, kv_heads = SPECS[name]
    q, k = random_qk(n_tokens, heads, kv_heads, 16, seed=n_tokens)
    exact = attention_pattern(q, k, spec).numpy()
    regions = [((0, n_tokens), (0, n_tokens))]
    if n_tokens > 10:
        regions.append(((n_tokens // 3, n_tokens - 2), (1, n_tokens // 2 + 3)))
    for rows, cols in regions:
        lse, _ = row_statistics(
            q, k, spec, torch.arange(heads), torch.arange(*rows), tile_cells=heads * 40
        )
        # shapes that do not divide the region; small tiles split blocks into pieces
        for shape, tile_cells in (((5, 7), heads * 60), ((3, 2), heads * 16), ((64, 64), 10**6)):
            pooled = pooled_patterns_from_qk(
                q, k, spec, torch.arange(heads), lse,
                rows=rows, cols=cols, shape=shape, reduce=reduce, tile_cells=tile_cells,
            )  # fmt: skip
            for head, view in enumerate(pooled):
                expected = pool_exact(
                    exact[head], rows, cols, view.row_edges, view.col_edges, reduce
                )
                np.testing.assert_allclose(view.values, expected, rtol=2e-5, atol=2e-7)
                assert view.row_edges[0] == rows[0] and view.row_edges[-1] == rows[1]
                assert len(view.row_edges) - 1 <= shape[0]
                if reduce == "max":
                    seen = view.argmax_query >= 0
                    at_argmax = exact[head][view.argmax_query[seen], view.argmax_key[seen]]
                    np.testing.assert_allclose(at_argmax, view.values[seen], rtol=2e-5)
                    # a block with no visible cell reports 0 and argmax -1
                    assert np.all(view.values[~seen] == 0)


def test_one_cell_blocks_are_exact_and_equal_the_pattern() -> None:
    spec = AttentionSpec(scaling=0.3, sliding_window=5, n_kv_groups=2)
    q, k = random_qk(23, 4, 2, 8, seed=3)
    exp = synthetic_explanation([q], [k], [spec])
    exact = attention_pattern(q, k, spec).numpy()
    for head in range(4):
        view = exp.pooled_attention(0, head, shape=(512, 512))
        assert view.exact and view.values.shape == (23, 23)
        np.testing.assert_allclose(view.values, exact[head], rtol=1e-5, atol=1e-7)
        coarse = exp.pooled_attention(0, head, shape=(4, 4), reduce="sum")
        assert not coarse.exact
        # a full row of sum-pooled blocks holds all the weight of its queries
        np.testing.assert_allclose(coarse.values.sum(1), np.diff(coarse.row_edges), rtol=1e-5)


def test_edges_use_at_most_the_shape_and_cover_the_region() -> None:
    assert block_edges(0, 32768, 512).tolist() == list(range(0, 32769, 64))
    edges = block_edges(5, 1005, 512)  # 1000 rows in blocks of 2
    assert len(edges) == 501 and edges[0] == 5 and edges[-1] == 1005
    assert block_edges(3, 4, 512).tolist() == [3, 4]


def test_bad_regions_and_reductions_say_what_is_wrong() -> None:
    q, k = random_qk(10, 2, 2, 4, seed=0)
    exp = synthetic_explanation([q], [k], [AttentionSpec(scaling=0.5)])
    with pytest.raises(ValueError, match="rows=.*0 <= start < stop <= 10"):
        exp.pooled_attention(0, 0, rows=(4, 4))
    with pytest.raises(ValueError, match="reduce must be one of"):
        exp.pooled_attention(0, 0, reduce="mean")
    with pytest.raises(ValueError, match="head 2 is out of range"):
        exp.pooled_attention(0, 2)


def test_tiles_bound_memory_far_below_t_squared() -> None:
    """Largest score tile stays within the budget while T^2 is 128x larger."""
    n_tokens, budget = 2048, 2**15
    q, k = random_qk(n_tokens, 2, 1, 8, seed=1)
    exp = synthetic_explanation([q], [k], [AttentionSpec(scaling=0.3, n_kv_groups=2)])
    stats = TileStats()
    views = pooled_view(
        exp, 0, [0, 1], shape=(100, 100), reduce="sum", tile_cells=budget, stats=stats
    )
    assert stats.largest <= budget == n_tokens * n_tokens // 128
    assert stats.tiles > 64
    # sum pooling of a full view: every query row's weight is accounted for
    np.testing.assert_allclose(views[1].values.sum(), n_tokens, rtol=1e-4)


def planted_long_range(n_tokens: int, query: int, key: int, dim: int = 16):
    """Random small q/k plus one query that matches one key ``query - key`` tokens back."""
    q, k = random_qk(n_tokens, 1, 1, dim, seed=7)
    q, k = q * 0.3, k * 0.3
    q[0, query] = 0.0
    k[0, key] = 0.0
    q[0, query, 0] = 8.0
    k[0, key, 0] = 8.0
    return q, k


# ~30 s at T = 32768 on 2 shared cores: slow; the same walk at T = 8192 runs every time
@pytest.mark.parametrize("n_tokens", [8192, pytest.param(32768, marks=pytest.mark.slow)])
def test_planted_peak_20k_back_is_found_then_reached_exactly_by_zooming(n_tokens) -> None:
    query = n_tokens - 2000
    key = query - min(20000, n_tokens // 2)  # 20k tokens back at T = 32768
    q, k = planted_long_range(n_tokens, query, key)
    spec = AttentionSpec(scaling=0.25)
    exp = synthetic_explanation([q], [k], [spec])
    overview = exp.pooled_attention(0, 0, shape=(512, 512))
    assert overview.values.shape == (512, 512) and not overview.exact
    # the diagonal is bright in any causal head (token 0 puts all its weight on itself);
    # a reader looks for a spot far below it
    far = overview.row_edges[:-1, None] - 1000 > overview.col_edges[1:, None].T
    r, c = np.unravel_index(np.argmax(np.where(far, overview.values, 0)), far.shape)
    assert overview.row_edges[r] <= query < overview.row_edges[r + 1]
    assert overview.col_edges[c] <= key < overview.col_edges[c + 1]
    assert (overview.argmax_query[r, c], overview.argmax_key[r, c]) == (query, key)
    # the exact weight, from the one row alone
    row = attention_pattern(q[:, query : query + 1], k[:, : query + 1], spec)[0, 0]
    weight = float(row[key])
    assert weight > 0.5  # a peak worth finding
    view, zooms = overview, 0
    while not view.exact:  # zoom into the brightest block, 8x8 at a time
        rows = (int(view.row_edges[r]), int(view.row_edges[r + 1]))
        cols = (int(view.col_edges[c]), int(view.col_edges[c + 1]))
        view = exp.pooled_attention(0, 0, rows=rows, cols=cols, shape=(8, 8))
        r, c = np.unravel_index(np.argmax(view.values), view.values.shape)
        zooms += 1
    assert zooms == 2  # 64x64 (T=32k) or 16x16 blocks -> 8x8 or 2x2 -> single cells
    assert (int(view.row_edges[r]), int(view.col_edges[c])) == (query, key)
    assert view.values[r, c] == pytest.approx(weight, rel=1e-5)
    # every other cell of the exact view is the exact weight too
    rows, cols = (
        (int(view.row_edges[0]), int(view.row_edges[-1])),
        (int(view.col_edges[0]), int(view.col_edges[-1])),
    )
    exact = attention_pattern(q[:, rows[0] : rows[1]], k[:, : rows[1]], spec)[0]
    np.testing.assert_allclose(
        view.values, exact[:, cols[0] : cols[1]].numpy(), rtol=1e-5, atol=1e-9
    )


def test_flow_values_match_the_exact_flow_of_every_head() -> None:
    specs = [
        AttentionSpec(scaling=0.3, n_kv_groups=2),
        AttentionSpec(scaling=0.3, sliding_window=4, n_kv_groups=2),
    ]
    pairs = [random_qk(19, 4, 2, 8, seed=s) for s in (1, 2)]
    exp = synthetic_explanation([p[0] for p in pairs], [p[1] for p in pairs], specs)
    cases = [
        ([5], [], "from"), ([0], [], "from"), ([3, 9, 9], [1, 2, 8], "from"),
        ([6], [], "to"), ([4, 7], [10, 18], "to"), ([18], [], "to"), ([], [], "from"),
    ]  # fmt: skip
    for focus, others, direction in cases:
        expected = np.array(
            [
                [
                    attention_flow(exp.attention(layer, h), focus, others, direction)
                    for h in range(4)
                ]
                for layer in range(2)
            ]
        )
        got = flow_values(exp, focus, others, direction, tile_cells=40)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    with pytest.raises(ValueError, match="token 19 is out of range"):
        flow_values(exp, [19], [], "from")


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("reduce", ["max", "sum"])
def test_one_pass_views_equal_two_pass_views_and_fill_the_normalisers(name, reduce) -> None:
    """Without known normalisers a view is one pass (each row chunk's scores give its
    log-sum-exp and its pooled values); same values, same argmax cells as the two-pass path
    (normalisers first), and the normalisers it keeps equal row_statistics'."""
    spec, heads, kv_heads = SPECS[name]
    n_tokens = 61
    q, k = random_qk(n_tokens, heads, kv_heads, 16, seed=5)
    exact = attention_pattern(q, k, spec).numpy()
    regions = [((0, n_tokens), (0, n_tokens)), ((20, 59), (1, 34)), ((40, 41), (0, 61))]
    for rows, cols in regions:
        lse, _ = row_statistics(q, k, spec, torch.arange(heads), torch.arange(*rows))
        # 2-3 rows per chunk: blocks of 13 rows are pooled from pieces
        for shape, tile_cells in (((5, 7), 200), ((64, 64), 10**6)):
            kept: list[torch.Tensor] = []
            one_pass = pooled_patterns_from_qk(
                q, k, spec, torch.arange(heads), None, rows=rows, cols=cols, shape=shape,
                reduce=reduce, tile_cells=tile_cells, normalised=kept,
            )  # fmt: skip
            two_pass = pooled_patterns_from_qk(
                q, k, spec, torch.arange(heads), lse, rows=rows, cols=cols, shape=shape,
                reduce=reduce, tile_cells=tile_cells,
            )  # fmt: skip
            torch.testing.assert_close(torch.stack(kept), lse, rtol=1e-5, atol=1e-5)
            for head, (a, b) in enumerate(zip(one_pass, two_pass, strict=True)):
                expected = pool_exact(exact[head], rows, cols, a.row_edges, a.col_edges, reduce)
                np.testing.assert_allclose(a.values, expected, rtol=2e-5, atol=2e-7)
                np.testing.assert_allclose(a.values, b.values, rtol=2e-5, atol=2e-7)
                np.testing.assert_array_equal(a.argmax_query, b.argmax_query)
                np.testing.assert_array_equal(a.argmax_key, b.argmax_key)


def test_kept_normalisers_make_the_next_view_one_region_pass_with_the_same_values() -> None:
    """The first view of a head computes its rows' normalisers once and keeps them; a zoom
    then computes no normaliser and only the region's scores, and its values equal a fresh
    explanation's (no cache) to float rounding (the row sums run over other chunk widths)."""
    spec = AttentionSpec(scaling=0.3, n_kv_groups=2)
    q, k = random_qk(400, 4, 2, 8, seed=11)
    cached = synthetic_explanation([q], [k], [spec])
    first = TileStats()
    cached.pooled_attention(0, 3, shape=(40, 40))
    pooled_view(cached, 0, [1], shape=(40, 40), stats=first)
    assert first.normalised_rows == 400  # one pass gave every row's normaliser
    known = cached.row_normalisers.known[0]
    assert known[[1, 3]].all() and not known[[0, 2]].any()
    zoom = TileStats()
    region = {"rows": (300, 340), "cols": (100, 140), "shape": (40, 40)}
    (zoomed,) = pooled_view(cached, 0, [1], **region, stats=zoom)
    assert zoom.normalised_rows == 0
    assert zoom.largest <= 40 * 40  # only the region's scores
    fresh = synthetic_explanation([q], [k], [spec])
    (cold,) = pooled_view(fresh, 0, [1], **region)
    np.testing.assert_array_equal(zoomed.argmax_key, cold.argmax_key)
    np.testing.assert_allclose(zoomed.values, cold.values, rtol=3e-6, atol=0)
    np.testing.assert_allclose(
        zoomed.values, attention_pattern(q, k, spec)[1, 300:340, 100:140].numpy(), rtol=1e-5
    )


def test_views_from_several_threads_share_the_normalisers_and_agree() -> None:
    """Pooled views may run in a background thread while the kernel answers messages: the
    normaliser tables are locked, and every thread gets the single-threaded answer."""
    from concurrent.futures import ThreadPoolExecutor

    spec = AttentionSpec(scaling=0.3)
    q, k = random_qk(300, 4, 4, 8, seed=12)
    shared = synthetic_explanation([q], [k], [spec])
    alone = synthetic_explanation([q], [k], [spec])
    jobs = [(h, region) for h in range(4) for region in ((0, 300), (150, 300), (0, 100))] * 2
    expected = {
        job: pooled_view(alone, 0, [job[0]], rows=job[1], shape=(16, 16))[0] for job in jobs
    }
    with ThreadPoolExecutor(4) as pool:
        got = list(
            pool.map(lambda j: pooled_view(shared, 0, [j[0]], rows=j[1], shape=(16, 16))[0], jobs)
        )
    for job, view in zip(jobs, got, strict=True):
        np.testing.assert_allclose(view.values, expected[job].values, rtol=3e-6, atol=0)
        np.testing.assert_array_equal(view.argmax_query, expected[job].argmax_query)
    assert bool(shared.row_normalisers.known[0].all())


@pytest.mark.parametrize("reduce", ["max", "sum"])
def test_one_pass_views_with_scores_beyond_60_shift_each_row(reduce) -> None:
    """Scores past +-60 (where exp(score) unshifted would overflow or vanish) take the
    shifted sum: still the pooling of the exact pattern."""
    spec = AttentionSpec(scaling=1.0)
    q, k = random_qk(50, 2, 2, 16, seed=13)
    q = q * 12.0  # scores of several hundred
    q[1] = -q[1]  # and a head whose rows are mostly very negative
    exact = attention_pattern(q, k, spec).numpy()
    assert np.abs(torch.einsum("htd,hsd->hts", q, k).numpy()).max() > 200
    pooled = pooled_patterns_from_qk(
        q, k, spec, torch.arange(2), None, rows=(0, 50), cols=(0, 50), shape=(7, 5), reduce=reduce
    )
    for head, view in enumerate(pooled):
        expected = pool_exact(exact[head], (0, 50), (0, 50), view.row_edges, view.col_edges, reduce)
        np.testing.assert_allclose(view.values, expected, rtol=2e-5, atol=2e-7)
