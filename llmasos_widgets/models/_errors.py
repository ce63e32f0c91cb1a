"""Errors ``load_model`` raises; each says what was wrong and what to do."""

from __future__ import annotations


class ModelNotFoundError(ValueError):
    """The name is neither bundled, a short name, a local directory, nor a reachable hub id."""


class GatedModelError(ModelNotFoundError):
    """A gated hub repository the current user (or anonymous session) may not download."""


class UnsupportedCheckpointError(ValueError):
    """A checkpoint whose weights the explanations cannot use exactly (e.g. quantized)."""
