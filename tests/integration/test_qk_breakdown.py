"""Query·key breakdown: per-dimension products add up to the pattern's pre-softmax logits,
each query head reads its grouped-query kv head, and AttentionWidget sends it for a cell."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmasos_widgets.widgets import AttentionWidget
from llmasos_widgets.widgets._qk import qk_breakdown

TEXT = "the keys to the old cabinet are on the table"


@pytest.fixture(scope="module")
def explanation(bundled):
    return bundled.explain(TEXT, saliency=False)


def test_products_sum_to_the_logits_whose_softmax_is_the_pattern(explanation) -> None:
    n = explanation.n_tokens
    for layer in range(explanation.n_layers):
        for head in range(explanation.n_heads):
            query = n - 1
            logits = np.array(
                [qk_breakdown(explanation, layer, head, query, key).score for key in range(n)]
            )
            weights = np.exp(logits - logits.max())
            weights /= weights.sum()
            np.testing.assert_allclose(
                weights, explanation.attention(layer, head)[query], rtol=1e-5, atol=1e-6
            )
            cell = qk_breakdown(explanation, layer, head, query, 2)
            assert cell.products.sum() == pytest.approx(cell.score, rel=1e-5, abs=1e-6)
            assert cell.pair_products.sum() == pytest.approx(cell.score, rel=1e-5, abs=1e-6)
            assert cell.weight == pytest.approx(float(weights[2]), rel=1e-5, abs=1e-7)


def test_grouped_query_heads_read_their_kv_head(explanation) -> None:
    spec = explanation.specs[1]
    assert spec.n_kv_groups == 2  # the bundled model: 4 query heads, 2 kv heads
    for head in range(explanation.n_heads):
        cell = qk_breakdown(explanation, 1, head, 5, 3)
        assert cell.kv_head == head // 2
        k = explanation.keys[1][head // 2, 3].to(torch.float32).numpy()
        np.testing.assert_array_equal(cell.k, k)
        wrong = explanation.keys[1][1 - head // 2, 3].to(torch.float32).numpy()
        other = float((cell.q.astype(np.float64) * wrong).sum() * spec.scaling)
        # the other kv head gives another score (so the mapping is tested, not assumed)
        assert abs(other - cell.score) > 1e-3


def test_masked_cells_and_bad_positions(explanation) -> None:
    cell = qk_breakdown(explanation, 0, 0, 2, 5)
    assert cell.masked and cell.weight == 0.0
    with pytest.raises(ValueError, match="query=99 is out of range"):
        qk_breakdown(explanation, 0, 0, 99, 0)
    with pytest.raises(ValueError, match="layer 7"):
        qk_breakdown(explanation, 7, 0, 1, 0)


def test_attention_widget_sends_the_selected_cell(explanation) -> None:
    widget = AttentionWidget(explanation, selected_layer=2, selected_heads=[1, 3])
    assert widget.qk == {}
    widget.selected_cell = [6, 2]
    qk = widget.qk
    assert qk["heads"] == [1, 3] and qk["kv_heads"] == [0, 1]
    assert (qk["query"], qk["key"]) == (6, 2)
    values = np.frombuffer(qk["values"]["view"], dtype="<f4").reshape(qk["values"]["shape"])
    assert values.shape == (2, 3, 16)
    for row, head in enumerate([1, 3]):
        assert values[row, 2].sum() == pytest.approx(qk["scores"][row], rel=1e-4, abs=1e-5)
        assert qk["weights"][row] == pytest.approx(
            float(explanation.attention(2, head)[6, 2]), rel=1e-6
        )
    widget.selected_heads = []
    assert widget.qk["heads"] == [0, 1, 2, 3]
    widget.selected_cell = []
    assert widget.qk == {}
