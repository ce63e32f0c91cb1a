"""Path patching against the bundled model's copying circuit (known answer) and its own
identities: the previous-token heads L0H2/L0H3 reach the copy only through the L1 induction
heads' keys and values, never their queries."""

from __future__ import annotations

import numpy as np
import pytest

import llmasos_widgets as lw
from llmasos_widgets._hooks import count_hooks
from llmasos_widgets.language import copy_examples
from llmasos_widgets.language._copying import COPY_WORDS

SENDERS = [(0, 2), (0, 3)]  # the previous-token heads (docs/interventions.md, ablation)
INDUCTION = range(4)  # L1 H0-3


def copy_pairs(n: int, seed: int = 3) -> list[tuple[str, str, str]]:
    """``(clean, corrupted, target)``: a repeated word list cut before its last word (the
    target, copied from the first half), and the same with the word *before* the copy's
    source changed -- the token there and everything the query sees are equal, only the
    previous-token information at the source differs."""
    rng = np.random.default_rng(seed)
    pairs = []
    for example in copy_examples(n, length=10, seed=seed):
        half = example.words[: example.period]
        first = list(half)
        first[-2] = str(rng.choice([w for w in COPY_WORDS if w not in half]))
        clean, corrupted = (" ".join((a + half)[:-1]) for a in (half, first))
        pairs.append((clean, corrupted, " " + half[-1]))
    return pairs


def receivers(which: str) -> list[tuple[int, int, str]]:
    return [(1, head, part) for part in which for head in INDUCTION]


def test_previous_token_heads_reach_the_copy_through_keys_and_values_not_queries(
    bundled,
) -> None:
    """Measured over 10 pairs (means): total 1.00; through the L1 heads' keys 0.35 (0.09-0.63),
    queries 0.00, values 0.00, keys and values together 1.00. The previous-token information
    a source position carries is what the induction head both finds (keys) and copies on
    (values): either alone restores little, both restore all of it."""
    effects: dict[str, list[float]] = {"k": [], "q": [], "v": [], "kv": [], "total": []}
    for clean, corrupted, target in copy_pairs(10):
        for which in ("k", "q", "v", "kv"):
            result = lw.path_patching(
                bundled, clean, corrupted, senders=SENDERS, receivers=receivers(which),
                target=target,
            )  # fmt: skip
            effects[which].append(result.effect)
        effects["total"].append(result.total_effect)
    mean = {name: float(np.mean(values)) for name, values in effects.items()}
    assert mean["total"] >= 0.95
    assert mean["kv"] >= 0.95
    assert abs(mean["q"]) <= 0.05 and abs(mean["v"]) <= 0.1
    assert 0.15 <= mean["k"] <= 0.6
    assert count_hooks(bundled.hf_model) == 0


def test_identities_and_bad_input(bundled) -> None:
    clean, corrupted, target = copy_pairs(1)[0]
    # no sender: nothing to patch; receivers before the senders: no path
    with pytest.raises(ValueError, match="senders is empty"):
        lw.path_patching(bundled, clean, corrupted, senders=[], target=target)
    with pytest.raises(ValueError, match="after the first sender"):
        lw.path_patching(
            bundled, clean, corrupted, senders=[(1, 0)], receivers=[(0, 1, "k")], target=target
        )
    with pytest.raises(ValueError, match="'q', 'k' or 'v'"):
        lw.path_patching(
            bundled, clean, corrupted, senders=SENDERS, receivers=[(1, 0, "o")], target=target
        )
    # one sender's total effect (every path) is activation patching's head-map value for it
    result = lw.path_patching(bundled, clean, corrupted, senders=[(0, 3)], target=target)
    exact = lw.activation_patching(bundled, clean, corrupted, target=target, residual=False)
    assert exact.heads is not None
    assert result.total_effect == pytest.approx(float(exact.heads[0, 3]), abs=1e-4)
    assert "L0H3 -> logits" in repr(result)


def test_the_map_shows_where_the_effect_arrives(bundled) -> None:
    """Each later head alone as the receiver. Measured on 3 pairs: through the keys, the L1
    heads sharing key head 1 (H2, H3) carry 0.34-0.51 and those sharing key head 0 0.07-0.19,
    equal within a pair (one key head serves both under grouped-query attention); L2 and every
    query ~0."""
    from llmasos_widgets.interventions import PathPatchingMap, path_patching_map

    for clean, corrupted, target in copy_pairs(3):
        keys = path_patching_map(
            bundled, clean, corrupted, senders=SENDERS, which="k", target=target
        )
        queries = path_patching_map(
            bundled, clean, corrupted, senders=SENDERS, which="q", target=target
        )
        assert isinstance(keys, PathPatchingMap)
        assert np.all(np.isnan(keys.effect[0]))  # layer 0 holds the senders: no receiver
        assert keys.effect[1, 0] == pytest.approx(keys.effect[1, 1], abs=1e-6)
        assert keys.effect[1, 2] == pytest.approx(keys.effect[1, 3], abs=1e-6)
        assert keys.effect[1].max() >= 0.2 and np.abs(keys.effect[2]).max() <= 0.05
        assert np.nanmax(np.abs(queries.effect)) <= 0.05
    widget = lw.PatchingWidget(keys)
    assert widget.heads["shape"] == [3, 4] and widget.caption.startswith("path patching")
