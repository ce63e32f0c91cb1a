"""``import llmasos``: the public API of :mod:`llmasos_widgets` under a shorter name.

Every name is the same object as ``llmasos_widgets.<name>`` (``llmasos.load_model is
llmasos_widgets.load_model``), imported lazily like there, so ``import llmasos`` does not
import torch until a model is used::

    import llmasos

    model = llmasos.load_model("llama-7b")
    print(model.explain("这是一段示例文本。"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import llmasos_widgets as _widgets

__version__ = _widgets.__version__

__all__ = list(_widgets.__all__)


def __getattr__(name: str) -> Any:
    if name not in __all__ and name not in _widgets._public_submodules():  # llmasos.graphs
        raise AttributeError(f"module 'llmasos' has no attribute {name!r}")
    value = getattr(_widgets, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext llmasos``: the same ``%explain`` / ``%%explain`` magics as
    ``%load_ext llmasos_widgets``."""
    _widgets.load_ipython_extension(ipython)


if TYPE_CHECKING:
    from llmasos_widgets import AttentionWidget as AttentionWidget
    from llmasos_widgets import CompareWidget as CompareWidget
    from llmasos_widgets import Comparison as Comparison
    from llmasos_widgets import ExplainableModel as ExplainableModel
    from llmasos_widgets import Explanation as Explanation
    from llmasos_widgets import FeatureActivations as FeatureActivations
    from llmasos_widgets import FeatureExamples as FeatureExamples
    from llmasos_widgets import FeatureWidget as FeatureWidget
    from llmasos_widgets import LogitLensWidget as LogitLensWidget
    from llmasos_widgets import PatchingWidget as PatchingWidget
    from llmasos_widgets import ProbeResult as ProbeResult
    from llmasos_widgets import ProbeWidget as ProbeWidget
    from llmasos_widgets import SAEConfig as SAEConfig
    from llmasos_widgets import Saliency as Saliency
    from llmasos_widgets import SaliencyWidget as SaliencyWidget
    from llmasos_widgets import SparseAutoencoder as SparseAutoencoder
    from llmasos_widgets import ablate_heads as ablate_heads
    from llmasos_widgets import activation_patching as activation_patching
    from llmasos_widgets import activations as activations
    from llmasos_widgets import attribute as attribute
    from llmasos_widgets import compare as compare
    from llmasos_widgets import compare_faithfulness as compare_faithfulness
    from llmasos_widgets import counterfactuals as counterfactuals
    from llmasos_widgets import explain as explain
    from llmasos_widgets import faithfulness as faithfulness
    from llmasos_widgets import feature_examples as feature_examples
    from llmasos_widgets import generate as generate
    from llmasos_widgets import link_selection as link_selection
    from llmasos_widgets import load_model as load_model
    from llmasos_widgets import probe as probe
    from llmasos_widgets import qk_breakdown as qk_breakdown
    from llmasos_widgets import trace as trace
