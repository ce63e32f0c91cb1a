"""explain()'s progress: one bar counting each layer of the forward and of the head summaries,
the induction pass and the saliency, labelled with that work; shown only once the call has
run for ``PROGRESS_DELAY_S`` (so a quick call shows nothing); ``progress=False`` silences it."""

from __future__ import annotations

from llmasos_widgets.attribution import _progress

TEXT = "the keys near the cabinet are"


def test_a_long_explain_counts_every_step_to_its_end(bundled, bars, monkeypatch) -> None:
    monkeypatch.setattr(_progress, "PROGRESS_DELAY_S", 0.0)  # every call counts as long
    bundled.explain(TEXT, saliency_method="gradient")
    (bar,) = [b for b in bars if b.desc.startswith("explain")]
    n_layers = bundled.config.num_hidden_layers
    # 3 forward layers + 3 summary layers + the induction pass + the saliency
    assert bar.total == 2 * n_layers + 2
    assert bar.desc == (
        f"explain: 7 tokens × {n_layers} layers (forward, head summaries, induction pass, "
        "gradient saliency)"
    )
    assert bar.n == bar.total and bar.closed


def test_without_saliency_the_bar_has_no_saliency_step(bundled, bars, monkeypatch) -> None:
    monkeypatch.setattr(_progress, "PROGRESS_DELAY_S", 0.0)
    bundled.explain(TEXT, saliency=False)
    (bar,) = bars
    assert bar.total == 2 * bundled.config.num_hidden_layers + 1
    assert "saliency" not in bar.desc and bar.n == bar.total


def test_a_quick_explain_and_progress_false_show_no_bar(bundled, bars, monkeypatch) -> None:
    monkeypatch.setattr(_progress, "_clock", lambda: 0.0)  # the clock stands still: quick
    bundled.explain(TEXT, saliency=False)
    assert bars == []
    monkeypatch.setattr(_progress, "PROGRESS_DELAY_S", 0.0)
    bundled.explain(TEXT, progress=False)
    assert bars == []
