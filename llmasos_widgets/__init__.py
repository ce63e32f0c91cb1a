"""Jupyter widgets that explain LLaMA-family language models.

The names users type are re-exported here and imported lazily, so ``import llmasos_widgets``
stays fast and does not import torch until a model is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load_model": "llmasos_widgets.models",
    "ExplainableModel": "llmasos_widgets.models",
    "trace": "llmasos_widgets.tracing",
    "Explanation": "llmasos_widgets.explanation",
    "explain": "llmasos_widgets.explanation",
    "generate": "llmasos_widgets.explanation",
    "attribute": "llmasos_widgets.attribution",
    "Saliency": "llmasos_widgets.attribution",
    "faithfulness": "llmasos_widgets.attribution",
    "compare_faithfulness": "llmasos_widgets.attribution",
    "LogitLensWidget": "llmasos_widgets.widgets",
    "qk_breakdown": "llmasos_widgets.widgets",
    "activations": "llmasos_widgets.probing",
    "probe": "llmasos_widgets.probing",
    "ProbeResult": "llmasos_widgets.probing",
    "AttentionWidget": "llmasos_widgets.widgets",
    "SaliencyWidget": "llmasos_widgets.widgets",
    "ProbeWidget": "llmasos_widgets.widgets",
    "link_selection": "llmasos_widgets.widgets",
    "ablate_heads": "llmasos_widgets.interventions",
    "activation_patching": "llmasos_widgets.interventions",
    "logit_attribution": "llmasos_widgets.interventions",
    "attribution_patching": "llmasos_widgets.interventions",
    "path_patching": "llmasos_widgets.interventions",
    "counterfactuals": "llmasos_widgets.interventions",
    "PatchingWidget": "llmasos_widgets.widgets",
    "compare": "llmasos_widgets.comparison",
    "Comparison": "llmasos_widgets.comparison",
    "CompareWidget": "llmasos_widgets.widgets",
    "train_sae": "llmasos_widgets.features",
    "SAETrainingReport": "llmasos_widgets.features",
    "steer": "llmasos_widgets.features",
    "ablate_features": "llmasos_widgets.features",
    "FeatureAblationResult": "llmasos_widgets.features",
    "load_sae": "llmasos_widgets.features",
    "save_sae": "llmasos_widgets.features",
    "FeatureWidget": "llmasos_widgets.widgets",
    "GraphWidget": "llmasos_widgets.widgets",
    "feature_examples": "llmasos_widgets.features",
    "FeatureActivations": "llmasos_widgets.features",
    "FeatureExamples": "llmasos_widgets.features",
    "SparseAutoencoder": "llmasos_widgets.features",
    "SAEConfig": "llmasos_widgets.features",
    "train_transcoder": "llmasos_widgets.features",
    "train_transcoders": "llmasos_widgets.features",
    "TranscoderTrainingReport": "llmasos_widgets.features",
    "splice_transcoders": "llmasos_widgets.features",
    "save_transcoder": "llmasos_widgets.features",
    "load_transcoder": "llmasos_widgets.features",
    "load_transcoders": "llmasos_widgets.features",
    "Transcoder": "llmasos_widgets.features",
    "TranscoderConfig": "llmasos_widgets.features",
    "attribution_graph": "llmasos_widgets.graphs",
    "AttributionGraph": "llmasos_widgets.graphs",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in _public_submodules():  # lw.graphs.X typed first thing, as np.linalg.X
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module 'llmasos_widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def _public_submodules() -> set[str]:
    import pkgutil

    return {info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")}


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext llmasos_widgets``: the ``%explain`` / ``%%explain`` magics (``_magics.py``)."""
    from llmasos_widgets._magics import load_ipython_extension as register

    register(ipython)


if TYPE_CHECKING:
    from llmasos_widgets.attribution import Saliency as Saliency
    from llmasos_widgets.attribution import attribute as attribute
    from llmasos_widgets.attribution import compare_faithfulness as compare_faithfulness
    from llmasos_widgets.attribution import faithfulness as faithfulness
    from llmasos_widgets.comparison import Comparison as Comparison
    from llmasos_widgets.comparison import compare as compare
    from llmasos_widgets.explanation import Explanation as Explanation
    from llmasos_widgets.explanation import explain as explain
    from llmasos_widgets.explanation import generate as generate
    from llmasos_widgets.features import FeatureAblationResult as FeatureAblationResult
    from llmasos_widgets.features import FeatureActivations as FeatureActivations
    from llmasos_widgets.features import FeatureExamples as FeatureExamples
    from llmasos_widgets.features import SAEConfig as SAEConfig
    from llmasos_widgets.features import SAETrainingReport as SAETrainingReport
    from llmasos_widgets.features import SparseAutoencoder as SparseAutoencoder
    from llmasos_widgets.features import Transcoder as Transcoder
    from llmasos_widgets.features import TranscoderConfig as TranscoderConfig
    from llmasos_widgets.features import TranscoderTrainingReport as TranscoderTrainingReport
    from llmasos_widgets.features import ablate_features as ablate_features
    from llmasos_widgets.features import feature_examples as feature_examples
    from llmasos_widgets.features import load_sae as load_sae
    from llmasos_widgets.features import load_transcoder as load_transcoder
    from llmasos_widgets.features import load_transcoders as load_transcoders
    from llmasos_widgets.features import save_sae as save_sae
    from llmasos_widgets.features import save_transcoder as save_transcoder
    from llmasos_widgets.features import splice_transcoders as splice_transcoders
    from llmasos_widgets.features import steer as steer
    from llmasos_widgets.features import train_sae as train_sae
    from llmasos_widgets.features import train_transcoder as train_transcoder
    from llmasos_widgets.features import train_transcoders as train_transcoders
    from llmasos_widgets.interventions import ablate_heads as ablate_heads
    from llmasos_widgets.interventions import activation_patching as activation_patching
    from llmasos_widgets.interventions import attribution_patching as attribution_patching
    from llmasos_widgets.interventions import counterfactuals as counterfactuals
    from llmasos_widgets.interventions import logit_attribution as logit_attribution
    from llmasos_widgets.interventions import path_patching as path_patching
    from llmasos_widgets.models import ExplainableModel as ExplainableModel
    from llmasos_widgets.models import load_model as load_model
    from llmasos_widgets.probing import ProbeResult as ProbeResult
    from llmasos_widgets.probing import activations as activations
    from llmasos_widgets.probing import probe as probe
    from llmasos_widgets.tracing import trace as trace
    from llmasos_widgets.widgets import AttentionWidget as AttentionWidget
    from llmasos_widgets.widgets import CompareWidget as CompareWidget
    from llmasos_widgets.widgets import FeatureWidget as FeatureWidget
    from llmasos_widgets.widgets import GraphWidget as GraphWidget
    from llmasos_widgets.widgets import LogitLensWidget as LogitLensWidget
    from llmasos_widgets.widgets import PatchingWidget as PatchingWidget
    from llmasos_widgets.widgets import ProbeWidget as ProbeWidget
    from llmasos_widgets.widgets import SaliencyWidget as SaliencyWidget
    from llmasos_widgets.widgets import link_selection as link_selection
    from llmasos_widgets.widgets import qk_breakdown as qk_breakdown
