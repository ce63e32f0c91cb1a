"""Transcoders on the bundled model: the pairs they learn from, training, splicing (known answers;
figures in docs/graphs.md)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from llmasos_widgets._hooks import count_hooks
from llmasos_widgets.features import (
    Transcoder,
    TranscoderConfig,
    TranscoderTrainingReport,
    splice_transcoders,
    train_transcoder,
)
from llmasos_widgets.language import agreement_examples
from llmasos_widgets.probing import activations
from tests._sae_known import one_thread
from tests._transcoders_known import (
    agreement_accuracy,
    copying_accuracy,
)

TEXTS = [e.sentence for e in agreement_examples(60, seed=3, split="train")]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


def _small(bundled, layer=1, **kwargs):
    options = dict(width=64, k=4, batch_size=32, epochs=3, lr=4e-3, seed=5, **kwargs)
    return train_transcoder(bundled, layer, TEXTS, **options)


def _random_transcoder(layer: int, seed: int = 0, **kwargs) -> Transcoder:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transcoder = Transcoder(
            TranscoderConfig(d_in=64, d_transcoder=32, d_out=64, layer=layer, k=4, **kwargs)
        )
        with torch.no_grad():
            transcoder.b_enc.normal_()
            transcoder.b_dec.normal_()
    return transcoder.eval()


@torch.no_grad()
def test_captured_pairs_are_the_mlps_input_and_output(bundled):
    """Each row is (post_attention_layernorm(resid_mid), mlp(that)): the output checked by
    running the layer's MLP by hand on the captured input, the input by rebuilding resid_mid
    from the model's own hidden states (layer output minus MLP output)."""
    texts = TEXTS[:6]
    acts = activations(bundled, texts, layers=[0, 1], positions="all", read="mlp", progress=False)
    assert acts.layers == (0, 1) and acts.hidden_size == 128
    layers = bundled.hf_model.model.layers
    for t, text in enumerate(texts):
        ids = bundled.encode(text)
        hidden = bundled.hf_model(input_ids=ids, output_hidden_states=True).hidden_states
        rows = acts.text_index == t
        assert (acts.positions[rows] == np.arange(ids.shape[1])).all()
        for layer in (0, 1):  # the last layer's hidden state is after the final norm in HF
            pairs = torch.from_numpy(acts[layer][rows])
            x, y = pairs[:, :64], pairs[:, 64:]
            torch.testing.assert_close(layers[layer].mlp(x), y, atol=1e-5, rtol=1e-5)
            resid_mid = hidden[layer + 1][0] - y
            normed = layers[layer].post_attention_layernorm(resid_mid)
            torch.testing.assert_close(normed, x, atol=1e-5, rtol=1e-5)


def test_mlp_reads_refuse_a_residual_site_past_the_last_layer(bundled):
    with pytest.raises(ValueError, match="MLPs are in decoder layers 0 to 2"):
        activations(bundled, TEXTS[:2], layers=[3], read="mlp", progress=False)
    with pytest.raises(ValueError, match="read must be one of"):
        activations(bundled, TEXTS[:2], layers=[1], read="attention", progress=False)


def test_training_is_deterministic_and_reports_the_mlp_fit(bundled):
    (a, report), (b, _) = _small(bundled), _small(bundled)
    torch.testing.assert_close(a.state_dict(), b.state_dict(), rtol=0, atol=0)
    assert isinstance(report, TranscoderTrainingReport) and report.transcoder is a
    assert a.config.layer == 1 and a.config.k == 4 and a.config.input_site == "mlp_in"
    assert 0.5 < report.fve <= 1 and report.l0 <= 4 and report.steps == len(report.loss)
    words = sum(len(t.split()) for t in TEXTS)  # tokens of the texts without <bos>
    n_train = report.metadata["n_train_texts"]
    assert n_train + report.metadata["n_held_out_texts"] == len(set(TEXTS))
    assert 0 < report.tokens / 3 < words  # 3 epochs over the training texts, no <bos>


def test_the_reported_fve_is_that_of_the_mlp_output_in_model_units(bundled):
    """Training scales inputs and outputs; the returned transcoder must not: its FVE on the
    held-out texts, computed here from scratch, is the report's."""
    from llmasos_widgets.features._training import _split

    transcoder, report = _small(bundled)
    _, held = _split(TEXTS, 0.1, seed=5)
    acts = activations(bundled, held, layers=[1], positions="all", read="mlp", progress=False)
    rows = torch.from_numpy(acts[1][acts.positions > 0])  # <bos> rows are skipped
    x, y = rows[:, :64].double(), rows[:, 64:].double()
    with torch.no_grad():
        predicted = transcoder.double()(x)
    fve = 1 - ((predicted - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()
    assert report.held_out_tokens == len(rows)
    assert float(fve) == pytest.approx(report.fve, abs=1e-5)
    assert report.fve > 0.8  # measured 0.94


def test_training_every_layer_from_one_pass_equals_training_each_alone(bundled):
    from llmasos_widgets.features import train_transcoders

    options = dict(width=32, k=4, batch_size=64, epochs=1, lr=4e-3, seed=5)
    together, reports = train_transcoders(bundled, TEXTS, layers=[2, 0], **options)
    assert [t.layer for t in together] == [2, 0] and [r.transcoder for r in reports] == together
    alone, _ = train_transcoder(bundled, 0, TEXTS, **options)
    torch.testing.assert_close(together[1].state_dict(), alone.state_dict(), rtol=0, atol=0)


def test_checkpoints_are_transcoder_sets_load_transcoder_reads_back(bundled, tmp_path):
    """Checkpoints are in model units like the result (the training scales folded in)."""
    from llmasos_widgets.features import load_transcoder

    transcoder, report = _small(bundled, checkpoint_dir=tmp_path, checkpoint_every=20)
    names = [path.name for path in report.checkpoints]
    assert names == [*(f"step-{s:07d}" for s in range(20, report.steps + 1, 20)), "final"]
    final = load_transcoder(tmp_path / "final")
    assert final.layer == 1 and final.config.k == 4
    x = torch.randn(5, 64)
    with torch.no_grad():
        torch.testing.assert_close(final(x), transcoder(x))
        assert not torch.allclose(load_transcoder(tmp_path / "step-0000020")(x), final(x))


def test_bad_arguments_say_what_to_pass(bundled):
    with pytest.raises(ValueError, match="exceeds width"):
        train_transcoder(bundled, 0, TEXTS, width=8, k=9)
    with pytest.raises(ValueError, match="MLPs are in decoder layers 0 to 2"):
        train_transcoder(bundled, 3, TEXTS, width=8, k=2)
    with pytest.raises(TypeError, match="list of strings"):
        train_transcoder(bundled, 0, "the key is old")
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train_transcoder(bundled, 0, TEXTS, checkpoint_every=3)


@torch.no_grad()
def test_splicing_equals_swapping_the_mlp_module_for_the_transcoder(bundled):
    """Known answer by another route: a copy of the model whose layer-1 MLP *is* the
    transcoder gives the logits the spliced model gives."""
    transcoder = _random_transcoder(1)
    ids = bundled.encode(TEXTS[0])
    swapped = copy.deepcopy(bundled.hf_model)
    swapped.model.layers[1].mlp = transcoder
    expected = swapped(input_ids=ids).logits
    plain = bundled.hf_model(input_ids=ids).logits
    with splice_transcoders(bundled, [transcoder]):
        spliced = bundled.hf_model(input_ids=ids).logits
    torch.testing.assert_close(spliced, expected, rtol=0, atol=1e-5)
    assert not torch.allclose(spliced, plain, atol=1e-2)
    torch.testing.assert_close(bundled.hf_model(input_ids=ids).logits, plain, rtol=0, atol=0)


@torch.no_grad()
def test_a_resid_mid_transcoder_reads_the_residual_before_the_norm(bundled):
    """input_site="resid_mid" (circuit-tracer's Llama files): the transcoder sees the norm's
    input; the module swap feeds it the same by replacing the norm with the identity."""
    transcoder = _random_transcoder(2, input_site="resid_mid")
    ids = bundled.encode(TEXTS[1])
    swapped = copy.deepcopy(bundled.hf_model)
    swapped.model.layers[2].mlp = transcoder
    swapped.model.layers[2].post_attention_layernorm = torch.nn.Identity()
    with splice_transcoders(bundled, transcoder):
        spliced = bundled.hf_model(input_ids=ids).logits
    torch.testing.assert_close(spliced, swapped(input_ids=ids).logits, rtol=0, atol=1e-5)


def test_hooks_come_off_after_an_error_and_the_train_flag_is_kept(bundled):
    model = bundled.hf_model
    before = count_hooks(model)
    model.train()
    try:
        spliced = splice_transcoders(bundled, [_random_transcoder(0), _random_transcoder(2)])
        with pytest.raises(RuntimeError, match="inside"), spliced:
            assert count_hooks(model) == before + 2
            raise RuntimeError("inside the block")
        assert count_hooks(model) == before and model.training
    finally:
        model.eval()
    with splice_transcoders(bundled, _random_transcoder(0)):
        pass
    assert count_hooks(model) == before and not model.training


def test_splice_refuses_what_does_not_fit(bundled):
    with pytest.raises(ValueError, match="two transcoders replace layer 1"):
        splice_transcoders(bundled, [_random_transcoder(1), _random_transcoder(1, seed=1)])
    with pytest.raises(ValueError, match="decoder layers 0 to 2"):
        splice_transcoders(bundled, _random_transcoder(3))
    wide = Transcoder(TranscoderConfig(d_in=32, d_transcoder=8, d_out=32, layer=0, k=2))
    with pytest.raises(ValueError, match="maps 32 -> 32 values but the model's MLPs map 64"):
        splice_transcoders(bundled, wide)
    with pytest.raises(TypeError, match="not a Transcoder"):
        splice_transcoders(bundled, [object()])
    with pytest.raises(ValueError, match="empty"):
        splice_transcoders(bundled, [])


@pytest.mark.slow  # an in-process Dask cluster: about 3 s
def test_a_dask_client_collects_the_same_pairs_and_trains_the_same_transcoder(bundled):
    distributed = pytest.importorskip("distributed")
    local = activations(bundled, TEXTS, layers=[0, 2], positions="all", read="mlp")
    transcoder, report = _small(bundled)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = activations(
            bundled, TEXTS, layers=[0, 2], positions="all", read="mlp", client=client
        )
        remote_transcoder, remote_report = _small(bundled, client=client)
    assert remote.layers == local.layers and (remote.positions == local.positions).all()
    for layer in (0, 2):
        np.testing.assert_allclose(remote[layer], local[layer], atol=1e-5, rtol=1e-5)
    assert remote_report.tokens == report.tokens and remote_report.steps == report.steps
    torch.testing.assert_close(remote_transcoder.W_dec, transcoder.W_dec, atol=1e-3, rtol=0)


@pytest.mark.slow
def test_splicing_every_layers_transcoder_keeps_agreement_and_copying(bundled, bundled_transcoders):
    """Measured (seed 0, tests/_transcoders_known.py): agreement 1.000 -> 0.980, copying
    1.000 -> 0.999 with all three layers' MLPs replaced."""
    transcoders, reports = bundled_transcoders
    assert [t.layer for t in transcoders] == [0, 1, 2]
    assert [r.fve for r in reports] == pytest.approx([0.993, 0.985, 0.997], abs=0.005)
    before = agreement_accuracy(bundled), copying_accuracy(bundled)
    with splice_transcoders(bundled, transcoders):
        after = agreement_accuracy(bundled), copying_accuracy(bundled)
    assert before[0] >= 0.95 and before[1] >= 0.95
    assert after[0] >= before[0] - 0.03, (before, after)
    assert after[1] >= before[1] - 0.03, (before, after)
    assert after == pytest.approx((0.980, 0.999), abs=0.01)  # the figures in docs/graphs.md


@pytest.mark.slow
def test_error_nodes_leave_a_few_percent_of_each_prompt_unexplained(bundled, bundled_transcoders):
    """Per prompt, the share of the tokens-to-logits influence that runs through error nodes
    (1 - circuit-tracer's replacement score), figures in docs/graphs.md. Measured: 50 held-out
    agreement prompts (target: the correct verb) median 0.057, range 0.029-0.102, completeness
    median 0.984; 20 copy prompts stopped inside the repeat (the model's top logits) median
    0.088, range 0.038-0.120, completeness median 0.967."""
    from llmasos_widgets.graphs import attribution_graph, graph_scores
    from llmasos_widgets.language import copy_examples
    from tests._sae_known import held_out_prompts

    transcoders, _ = bundled_transcoders
    agreement = [
        graph_scores(attribution_graph(bundled, transcoders, p.text, target=p.correct_verb))
        for p in held_out_prompts()[:50]
    ]
    copying = [
        graph_scores(attribution_graph(bundled, transcoders, " ".join(e.text.split()[:15])))
        for e in copy_examples(20, length=10, seed=31)
    ]
    for scores, median, low, high, complete in (
        (agreement, 0.057, 0.029, 0.102, 0.984),
        (copying, 0.088, 0.038, 0.120, 0.967),
    ):
        unexplained = np.array([s.unexplained for s in scores])
        assert np.median(unexplained) == pytest.approx(median, abs=0.01)
        assert unexplained.min() == pytest.approx(low, abs=0.01)
        assert unexplained.max() == pytest.approx(high, abs=0.015)
        assert np.median([s.completeness for s in scores]) == pytest.approx(complete, abs=0.01)
