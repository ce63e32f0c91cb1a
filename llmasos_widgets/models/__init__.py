"""Loading models for explanation: ``load_model`` and the ``ExplainableModel`` wrapper."""

from llmasos_widgets.models._analyses import register_analysis
from llmasos_widgets.models._errors import (
    GatedModelError,
    ModelNotFoundError,
    UnsupportedCheckpointError,
)
from llmasos_widgets.models._hub import hub_offline
from llmasos_widgets.models._loading import ExplainableModel, as_explainable, load_model
from llmasos_widgets.models._names import BUNDLED_MODELS, SHORT_NAMES
from llmasos_widgets.models._support import (
    SUPPORTED_ARCHITECTURES,
    UnsupportedArchitectureError,
    check_supported,
)

__all__ = [
    "BUNDLED_MODELS",
    "SHORT_NAMES",
    "SUPPORTED_ARCHITECTURES",
    "ExplainableModel",
    "GatedModelError",
    "ModelNotFoundError",
    "UnsupportedArchitectureError",
    "UnsupportedCheckpointError",
    "as_explainable",
    "check_supported",
    "hub_offline",
    "load_model",
    "register_analysis",
]
