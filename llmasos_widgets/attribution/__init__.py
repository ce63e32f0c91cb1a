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
    attribute,
    default_baseline,
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
from llmasos_widgets.attribution._saliency import (
    CONVERGENCE_TOLERANCE,
    ConvergenceWarning,
    Saliency,
)
from llmasos_widgets.targets import (
    Contrast,
    NextToken,
    Predicted,
    ResolvedTarget,
    as_target,
    resolve_target,
    resolve_token,
)
from llmasos_widgets.tracing._anatomy import decoder_layers

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
    "ResolvedTarget",
    "Saliency",
    "as_target",
    "attribute",
    "available_methods",
    "compare_faithfulness",
    "decoder_layers",
    "default_baseline",
    "faithfulness",
    "get_method",
    "register_method",
    "resolve_target",
    "resolve_token",
    "with_faithfulness",
]
