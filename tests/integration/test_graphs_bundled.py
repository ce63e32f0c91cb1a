"""Known answer on the bundled model: the agreement prompt's graph routes from the subject
token through a layer-1 feature at the subject's position, and from there through layer 2's
attention to the verb logits (the model's known circuit: the L2 heads attend from the last
token to the subject and carry its number, docs/interventions.md).

Measured first (tests/_transcoders_known.py's transcoders, the first 16 held-out agreement
prompts, ``target=[correct verb, wrong verb]``): of every path from the subject token to the
logits, the feature that is the last stop before the subject token carries the most influence
(circuit-tracer's normalised influence) at layer 1, subject position, in 16 of 16 prompts. In
the 8 singular prompts its edge raises the correct verb and lowers the wrong one (8 of 8), the
edge is carried by L2 heads only with the same head first in all 8, and the most frequent such
feature (L1 #127) fires at singular subjects 3.4x more than at plural ones over these prompts'
subjects (mean activation 2.23 vs 0.66; over 100 held-out prompts 1.89 vs 0.35): a number
feature. Plural
subjects reach the logits with less influence and mixed signs (the subject token's influence
ranks 4th-7th among the prompt's tokens there, 3rd-4th for singular subjects).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from llmasos_widgets.graphs import attribution_graph, edge_heads
from llmasos_widgets.graphs._pruning import influence, normalized
from tests._sae_known import held_out_prompts

pytestmark = pytest.mark.slow  # trains the transcoders, then 16 graphs: 127 s under load

N_PROMPTS = 16


@pytest.fixture(scope="module")
def traced(bundled, bundled_transcoders):
    """Per prompt: (example, graph, the top feature node before the subject token)."""
    transcoders, _ = bundled_transcoders
    found = []
    for example in held_out_prompts()[:N_PROMPTS]:
        target = [example.correct_verb, example.wrong_verb]
        graph = attribution_graph(bundled, transcoders, example.text, target=target)
        token = int(graph.nodes_of("token")[example.subject_index + 1])
        weights = torch.from_numpy(graph.logit_weights).double()
        matrix = normalized(torch.from_numpy(graph.adjacency).double())
        flow = (influence(matrix, weights) + weights).numpy()  # how much of the logits reaches
        features = graph.nodes_of("feature")
        through = flow[features] * matrix.numpy()[features, token]  # ... the token via f
        found.append((example, graph, int(features[np.argmax(through)])))
    return bundled, transcoders, found


def test_the_subject_reaches_the_verb_through_a_layer_1_feature_at_the_subject(traced) -> None:
    _, _, found = traced
    for example, graph, feature in found:
        assert graph.node_layer[feature] == 1, graph.node_name(feature)
        assert graph.node_position[feature] == example.subject_index + 1


def test_singular_subjects_raise_the_right_verb_through_layer_2_heads(traced) -> None:
    model, transcoders, found = traced
    singular = [(e, g, f) for e, g, f in found if e.number == "singular"]
    assert len(singular) >= 6
    first_heads = set()
    for _, graph, feature in singular:
        correct, wrong = graph.nodes_of("logit")
        assert graph.adjacency[correct, feature] > 0 > graph.adjacency[wrong, feature]
        heads = edge_heads(model, transcoders, graph, feature, int(correct))
        assert set(heads.layers.tolist()) == {2}
        assert float(heads.values.sum()) == pytest.approx(heads.total, rel=1e-4)
        first_heads.add(int(heads.heads[0]))
    assert len(first_heads) == 1


def test_the_feature_on_the_path_is_a_number_feature(traced) -> None:
    """The most frequent top feature of singular prompts fires at singular subjects far more
    than at plural ones (its activation, 0 where it is not a node)."""
    _, _, found = traced
    latent = Counter(
        int(g.node_index[f]) for e, g, f in found if e.number == "singular"
    ).most_common(1)[0][0]

    def activation(example, graph) -> float:
        at = (graph.node_kind == 0) & (graph.node_layer == 1) & (graph.node_index == latent)
        at &= graph.node_position == example.subject_index + 1
        return float(graph.node_value[at].sum())

    by_number = {
        number: np.mean([activation(e, g) for e, g, _ in found if e.number == number])
        for number in ("singular", "plural")
    }
    assert by_number["singular"] > 2 * by_number["plural"]  # measured 2.23 vs 0.66
