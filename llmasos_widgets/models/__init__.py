"""Loading models for explanation: ``load_model`` and the ``ExplainableModel`` wrapper."""

from llmasos_widgets.models._loading import (
    BUNDLED_MODELS,
    ExplainableModel,
    ModelNotFoundError,
    as_explainable,
    load_model,
)

__all__ = [
    "BUNDLED_MODELS",
    "ExplainableModel",
    "ModelNotFoundError",
    "as_explainable",
    "load_model",
]
