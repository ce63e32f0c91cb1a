"""Gradient saliency by token and by layer: ``attribute(...)`` → :class:`Saliency`.

Methods (see :data:`METHODS`): ``gradient`` (default), ``input_x_gradient``,
``integrated_gradients`` and ``occlusion``. Targets: :class:`NextToken`, :class:`Predicted`,
:class:`Contrast` (or their short forms, see :func:`attribute`). How faithful a map is
(deletion/insertion of its tokens vs a random order): :func:`faithfulness`,
:func:`compare_faithfulness`.
"""

from llmasos_widgets.attribution._attribute import (
    BASELINES,
    DEFAULT_N_STEPS,
    as_input_ids,
    attribute,
    default_baseline,
    resolve_sites,
)
from llmasos_widgets.attribution._faithfulness import (
    Faithfulness,
    FaithfulnessComparison,
    compare_faithfulness,
    faithfulness,
    with_faithfulness,
)
from llmasos_widgets.attribution._methods import (
    INTEGRATION_RULES,
    METHODS,
    AttributionMethod,
    available_methods,
    get_method,
    register_method,
)
from llmasos_widgets.attribution._progress import ProgressBar
from llmasos_widgets.attribution._saliency import (
    CONVERGENCE_TOLERANCE,
    ConvergenceWarning,
    Saliency,
)
from llmasos_widgets.attribution._saliency_matrix import SaliencyMatrix, attribute_generation
from llmasos_widgets.targets import (
    Contrast,
    NextToken,
    Predicted,
    ResolvedTarget,
    as_target,
    resolve_target,
    resolve_token,
)
from llmasos_widgets.tracing import decoder_layers

__all__ = [
    "BASELINES",
    "CONVERGENCE_TOLERANCE",
    "DEFAULT_N_STEPS",
    "INTEGRATION_RULES",
    "METHODS",
    "AttributionMethod",
    "Contrast",
    "ConvergenceWarning",
    "Faithfulness",
    "FaithfulnessComparison",
    "NextToken",
    "Predicted",
    "ProgressBar",
    "ResolvedTarget",
    "Saliency",
    "SaliencyMatrix",
    "as_input_ids",
    "as_target",
    "attribute",
    "attribute_generation",
    "available_methods",
    "compare_faithfulness",
    "decoder_layers",
    "default_baseline",
    "faithfulness",
    "get_method",
    "register_method",
    "resolve_sites",
    "resolve_target",
    "resolve_token",
    "with_faithfulness",
]
