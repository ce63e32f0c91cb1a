"""``attribute``'s progress: a tqdm.auto bar whose total is the work estimate given before the
call starts (sites × steps × passes, also its label), shown only for calls longer than
``PROGRESS_DELAY_S``; ``progress=False`` silences it; each method's default sites."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from llmasos_widgets.attribution import _progress, attribute, get_method

TEXT = "the keys near the cabinet"

IGNORE_CONVERGENCE = "ignore::llmasos_widgets.attribution.ConvergenceWarning"  # 8 steps


@pytest.mark.filterwarnings(IGNORE_CONVERGENCE)
@pytest.mark.parametrize(
    ("method", "n_steps", "expected_total", "label"),
    [
        # 4 sites × (8 gradient evaluations + 9 points of the adaptive rule's probe)
        ("integrated_gradients", 8, 4 * (8 + 9), "4 sites × (8 forward+backward + 9 forward)"),
        # 4 sites × 6 tokens (<bos> + 5 words), one occluded copy each
        ("occlusion", 8, 4 * 6, "4 sites × 6 occluded tokens"),
        ("gradient", 8, 1, "1 forward+backward pass for 4 sites"),
    ],
)
def test_the_bar_counts_the_estimated_work_to_its_end(
    bundled, bars, monkeypatch, method, n_steps, expected_total, label
) -> None:
    monkeypatch.setattr(_progress, "PROGRESS_DELAY_S", 0.0)
    units, estimate = get_method(method).work(4, 6, n_steps, "adaptive")
    assert units == expected_total and label in estimate
    attribute(bundled, TEXT, method=method, n_steps=n_steps, layers="all", internal_batch_size=4)
    if method == "gradient":  # one pass: its first report is its last, so no bar
        assert bars == []
        return
    (bar,) = bars
    assert bar.total == expected_total and bar.desc == estimate
    assert bar.n == bar.total and bar.closed  # advanced to the estimate, then closed
    assert bar.updates == sorted(bar.updates)  # never backwards
    assert len(bar.updates) > 2  # batch by batch, not only at the end


def test_a_short_call_shows_no_bar(bundled, bars, monkeypatch) -> None:
    """The bar appears only once a call has run PROGRESS_DELAY_S (2 s). These calls take
    ~0.1 s on an idle machine; the clock is stopped so that a loaded one cannot make them
    "long" (the threshold is on time, not on the model)."""
    assert _progress.PROGRESS_DELAY_S == 2.0
    now = [100.0]
    monkeypatch.setattr(_progress, "_clock", lambda: now[0])
    for method in ("gradient", "integrated_gradients", "occlusion"):
        attribute(bundled, TEXT, method=method)
    assert bars == []
    # the same call, once 2 s have passed at its first report, shows its bar from there
    clock = iter([100.0, 102.5])
    monkeypatch.setattr(_progress, "_clock", lambda: next(clock, 103.0))
    attribute(bundled, TEXT, method="occlusion", layers="all", internal_batch_size=2)
    (bar,) = bars
    assert bar.n == bar.total == 4 * 6 and bar.updates[0] == 2


@pytest.mark.filterwarnings(IGNORE_CONVERGENCE)
def test_progress_false_silences_it_and_a_callable_replaces_it(bundled, bars, monkeypatch) -> None:
    monkeypatch.setattr(_progress, "PROGRESS_DELAY_S", 0.0)
    attribute(bundled, TEXT, method="integrated_gradients", n_steps=8, progress=False)
    fractions: list[float] = []
    attribute(bundled, TEXT, method="occlusion", layers="all", progress=fractions.append)
    assert bars == []
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    with pytest.raises(TypeError, match="progress must be"):
        attribute(bundled, TEXT, progress="yes")  # type: ignore[arg-type]


@pytest.mark.filterwarnings(IGNORE_CONVERGENCE)
def test_sites_default_to_the_embeddings_where_each_site_costs_its_own_passes(bundled) -> None:
    assert inspect.signature(attribute).parameters["layers"].default is None
    n_sites = 4  # emb + 3 decoder layers
    for method, sites in (
        ("gradient", list(range(n_sites))),
        ("input_x_gradient", list(range(n_sites))),
        ("integrated_gradients", [0]),
        ("occlusion", [0]),
    ):
        assert get_method(method).default_layers == ("all" if len(sites) > 1 else "embeddings")
        saliency = attribute(bundled, TEXT, method=method, n_steps=8, progress=False)
        assert saliency.layers.tolist() == sites
    everything = attribute(bundled, TEXT, method="occlusion", layers="all", progress=False)
    assert everything.layers.tolist() == list(range(n_sites))


@pytest.mark.filterwarnings(IGNORE_CONVERGENCE)
def test_the_widget_names_the_work_while_its_progress_bar_advances(bundled) -> None:
    from llmasos_widgets import SaliencyWidget

    widget = SaliencyWidget(bundled, TEXT, method="gradient")
    seen: list[tuple[str, Any]] = []
    widget.observe(lambda c: seen.append((c["name"], c["new"])), names=["status", "progress"])
    widget.n_steps = 8
    widget.method = "integrated_gradients"
    estimate = "integrated gradients (1 site × (8 forward+backward + 9 forward) evaluations)"
    assert ("status", f"computing {estimate} …") in seen
    assert widget.sites == [0] and widget.progress == 1.0 and widget.status == "ready"
    every_row = SaliencyWidget(bundled, TEXT, method="occlusion", layers="all")
    assert every_row.sites == [0, 1, 2, 3]
