"""Public names stay what they are after every other entry point has been used: importing a
subpackage must not replace a lazily exported function of the same name (it did:
``llmasos_widgets.explain`` became the module once ``llmasos_widgets.explain`` the package
was imported)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys

import pytest

import llmasos_widgets as lw

EXPECTED_KINDS = {
    "load_model": "function",
    "ExplainableModel": "class",
    "trace": "function",
    "Explanation": "class",
    "explain": "function",
    "generate": "function",
    "attribute": "function",
    "Saliency": "class",
    "activations": "function",
    "probe": "function",
    "ProbeResult": "class",
    "AttentionWidget": "class",
    "SaliencyWidget": "class",
    "ProbeWidget": "class",
    "link_selection": "function",
    "faithfulness": "function",
    "compare_faithfulness": "function",
    "LogitLensWidget": "class",
    "qk_breakdown": "function",
    "ablate_heads": "function",
    "activation_patching": "function",
    "attribution_patching": "function",
    "path_patching": "function",
    "logit_attribution": "function",
    "counterfactuals": "function",
    "PatchingWidget": "class",
    "compare": "function",
    "Comparison": "class",
    "CompareWidget": "class",
    "train_sae": "function",
    "SAETrainingReport": "class",
    "steer": "function",
    "ablate_features": "function",
    "FeatureAblationResult": "class",
    "load_sae": "function",
    "save_sae": "function",
    "FeatureWidget": "class",
    "GraphWidget": "class",
    "feature_examples": "function",
    "FeatureActivations": "class",
    "FeatureExamples": "class",
    "SparseAutoencoder": "class",
    "SAEConfig": "class",
    "train_transcoder": "function",
    "train_transcoders": "function",
    "TranscoderTrainingReport": "class",
    "splice_transcoders": "function",
    "save_transcoder": "function",
    "load_transcoder": "function",
    "load_transcoders": "function",
    "Transcoder": "class",
    "TranscoderConfig": "class",
    "attribution_graph": "function",
    "AttributionGraph": "class",
}


def _kind(value: object) -> str:
    return "class" if isinstance(value, type) else "function" if callable(value) else "other"


def test_all_lists_the_public_names() -> None:
    assert set(lw.__all__) == {"__version__", *EXPECTED_KINDS}


def test_no_subpackage_or_module_shares_a_public_name() -> None:
    modules = {info.name for info in pkgutil.iter_modules(lw.__path__)}
    assert modules.isdisjoint(lw.__all__), modules & set(lw.__all__)


@pytest.mark.slow  # imports every entry point in fresh interpreters (~12 s)
def test_every_public_name_after_every_entry_point_was_used() -> None:
    """The issue's sequence, then every subpackage imported, then each name checked."""
    script = """
import importlib, pkgutil
import llmasos_widgets as lw
import llmasos
assert lw.graphs.graph_scores is llmasos.graphs.graph_scores  # before anything imported graphs
m = lw.load_model("tiny-llama")
m.explain("the keys")
lw.explain(m, "the keys", saliency=False)
for info in pkgutil.walk_packages(lw.__path__, "llmasos_widgets."):
    if info.name.endswith(".demo") or "._" in info.name:
        continue
    importlib.import_module(info.name)
def kind(v):
    return "class" if isinstance(v, type) else "function" if callable(v) else type(v).__name__
print({name: kind(getattr(lw, name)) for name in lw.__all__ if name != "__version__"})
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    kinds = ast.literal_eval(out.strip().splitlines()[-1])
    assert kinds == EXPECTED_KINDS


def test_names_after_importing_subpackages_in_this_process() -> None:
    for info in pkgutil.walk_packages(lw.__path__, "llmasos_widgets."):
        if not info.name.endswith(".demo") and "._" not in info.name:
            importlib.import_module(info.name)
    for name, kind in EXPECTED_KINDS.items():
        assert _kind(getattr(lw, name)) == kind, name


def test_subpackages_resolve_from_the_root_as_attributes() -> None:
    """``lw.graphs.X`` works as the first use of ``lw`` (the slow test above checks it in a
    fresh interpreter); private modules and unknown names are not found."""
    import llmasos

    public = {info.name for info in pkgutil.iter_modules(lw.__path__)}
    public = {name for name in public if not name.startswith("_")}
    assert {"graphs", "features", "widgets", "interventions"} <= public
    for name in public:
        module = importlib.import_module(f"llmasos_widgets.{name}")
        assert lw.__getattr__(name) is module
        assert llmasos.__getattr__(name) is module
    for missing in ("_hooks", "grpahs", "__main__"):
        with pytest.raises(AttributeError, match=repr(missing)):
            lw.__getattr__(missing)
        with pytest.raises(AttributeError, match=repr(missing)):
            llmasos.__getattr__(missing)
