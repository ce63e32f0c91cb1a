"""Causal results of the bundled model saved, loaded and carried by an Explanation: each comes
back field by field, a loaded estimate verifies against a model passed to it, and the HTML
report shows one section per attached result with its numbers (tokens escaped)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import llmasos_widgets as lw
from llmasos_widgets.explanation import ExplanationFileError
from llmasos_widgets.interventions import (
    AttributionPatchingResult,
    LogitAttribution,
    PatchingResult,
    agreement_twins,
    path_patching_map,
)
from tests._causal_results import assert_same


@pytest.fixture(scope="module")
def results(bundled: Any) -> dict[str, Any]:
    twin = agreement_twins(1, seed=0)[0]
    pair = (bundled, twin.clean, twin.corrupted)
    return {
        "estimate": lw.attribution_patching(*pair, target=twin.target),
        "exact": lw.activation_patching(*pair, target=twin.target, residual=False),
        "path": lw.path_patching(*pair, senders=[(0, 3)], target=twin.target),
        # senders in L1: only the L2 heads can receive (L0-L1 are NaN, shown as "—")
        "map": path_patching_map(*pair, senders=[(1, 0)], which="k", target=twin.target),
        "logit": lw.logit_attribution(bundled, twin.clean, target=twin.target),
        # nested results: each pair carries two logit attributions and an estimate
        "counterfactuals": lw.counterfactuals(
            bundled,
            "the {noun} near the cabinet",
            {"noun": ["keys", "key", "cats"]},
            target=(" are", " is"),
            progress=False,
        ),
    }


def test_each_result_comes_back_and_shows(results: dict[str, Any], tmp_path: Path) -> None:
    for name, result in results.items():
        loaded = type(result).load(result.save(tmp_path / f"{name}.safetensors"))
        assert_same(result, loaded)
        page = loaded.to_html(tmp_path / f"{name}.html").read_text(encoding="utf-8")
        assert page == result.to_html(tmp_path / f"{name}-0.html").read_text(encoding="utf-8")
        if isinstance(result, PatchingResult | LogitAttribution):  # the PatchingWidget
            data, _ = loaded._repr_mimebundle_()
            assert "application/vnd.jupyter.widget-view+json" in data


def test_a_loaded_estimate_verifies_with_the_model_passed(
    bundled: Any, results: dict[str, Any], tmp_path: Path
) -> None:
    estimate = results["estimate"]
    loaded = AttributionPatchingResult.load(estimate.save(tmp_path / "atp.safetensors"))
    with pytest.raises(RuntimeError, match="no model is attached"):
        loaded.verify(2)
    check, expected = loaded.verify(2, model=bundled), estimate.verify(2)
    assert check.cells == expected.cells
    np.testing.assert_array_equal(check.exact, expected.exact)


def test_an_explanation_carries_its_causal_results(
    bundled: Any, results: dict[str, Any], tmp_path: Path
) -> None:
    explanation = bundled.explain(results["logit"].text, saliency=False)
    attached = explanation.attach(*results.values())
    assert explanation.causal_results == ()  # frozen: attach returns a copy
    assert len(attached.causal_results) == 6 and "causal results=6" in repr(attached)
    with pytest.raises(TypeError, match="attach\\(\\) takes causal results"):
        explanation.attach(explanation)
    loaded = lw.Explanation.load(attached.save(tmp_path / "run.llmx"))
    assert [type(r) for r in loaded.causal_results] == [type(r) for r in results.values()]
    for saved, back in zip(results.values(), loaded.causal_results, strict=True):
        assert_same(saved, back)
    np.testing.assert_array_equal(loaded.attention(1, 2), attached.attention(1, 2))
    # a causal result file is not an explanation, nor the other way round
    with pytest.raises(ExplanationFileError, match="not an explanation"):
        lw.Explanation.load(results["path"].save(tmp_path / "path.safetensors"))
    with pytest.raises(ValueError, match="is an Explanation file"):
        PatchingResult.load(tmp_path / "run.llmx")
    # a result that cannot be saved: the old file stays, no temporary is left
    bad = dataclasses.replace(results["exact"], metadata={"model": object()})
    before = (tmp_path / "run.llmx").read_bytes()
    with pytest.raises(TypeError, match="cannot be saved"):
        explanation.attach(bad).save(tmp_path / "run.llmx")
    assert (tmp_path / "run.llmx").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_report_has_a_section_per_result(
    bundled: Any, results: dict[str, Any], tmp_path: Path
) -> None:
    explanation = bundled.explain(results["logit"].text, saliency=False)
    plain = explanation.to_html(tmp_path / "plain.html").read_text(encoding="utf-8")
    assert "Causal tests" not in plain
    report = (
        explanation.attach(*results.values())
        .to_html(tmp_path / "report.html")
        .read_text(encoding="utf-8")
    )
    sections = report.split("data-testid='report-causal-")[1:]
    assert len(sections) == 6
    estimate, exact, path, path_map, logit, counterfactuals = sections
    heads = results["estimate"].heads
    best = float(heads.flat[int(np.argmax(heads))])
    assert "Estimate by attribution patching (AtP)" in estimate and "An estimate" in estimate
    assert f">{best:+.2f}</td>" in estimate  # the best head's score, as the map writes it
    assert "Activation patching" in exact and "An estimate" not in exact
    assert f"data-testid='path-effect'>{results['path'].effect:+.3f}<" in path
    assert f"data-testid='total-effect'>{results['path'].total_effect:+.3f}<" in path
    assert "senders L0H3 → receivers the logits" in path
    assert "Path patching map: through each head's key" in path_map
    assert "<td>—</td>" in path_map  # L0 and L1 cannot receive from an L1 sender
    assert f">{float(results['map'].effect[2, 1]):+.2f}</td>" in path_map
    assert "Direct logit attribution" in logit and "L2 MLP" in logit
    fills = results["counterfactuals"]
    assert "<h3>Counterfactuals: the {noun} near the cabinet</h3>" in counterfactuals
    assert f"{fills.value('cats'):+.3f}" in counterfactuals and "Estimate by" in counterfactuals


def test_token_text_is_escaped_in_the_causal_sections(
    bundled: Any, results: dict[str, Any], tmp_path: Path
) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    exact = results["exact"]
    tokens = (*exact.clean_tokens[:-1], hostile)
    attached = bundled.explain("the keys", saliency=False).attach(
        dataclasses.replace(exact, clean_tokens=tokens, corrupted_tokens=tokens),
        dataclasses.replace(results["path"], clean_text=hostile, target=hostile),
        dataclasses.replace(results["map"], corrupted_text=hostile),
        dataclasses.replace(results["logit"], tokens=(*results["logit"].tokens[:-1], hostile)),
    )
    report = attached.to_html(tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<img" not in report
    assert report.count("&lt;img src=x onerror=alert(1)&gt;") >= 5
