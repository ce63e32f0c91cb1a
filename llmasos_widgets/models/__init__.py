"""Loading models for explanation: ``load_model`` and the ``ExplainableModel`` wrapper."""

from llmasos_widgets.models._errors import (
    GatedModelError,
    ModelNotFoundError,
    UnsupportedCheckpointError,
)
from llmasos_widgets.models._loading import ExplainableModel, as_explainable, load_model
from llmasos_widgets.models._names import BUNDLED_MODELS, SHORT_NAMES

__all__ = [
    "BUNDLED_MODELS",
    "SHORT_NAMES",
    "ExplainableModel",
    "GatedModelError",
    "ModelNotFoundError",
    "UnsupportedCheckpointError",
    "as_explainable",
    "load_model",
]
