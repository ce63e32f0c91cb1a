"""What ``train_sae`` and ``train_transcoder`` report: the dictionary and how well it fits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmasos_widgets.features._sae import SparseAutoencoder
from llmasos_widgets.features._transcoder import Transcoder


@dataclass(frozen=True, kw_only=True, eq=False)
class TrainingFit:
    """How well a trained dictionary (SAE or transcoder) fits, measured on held-out texts
    (never trained on); the fields both trainers report.

    ``fve`` is the fraction of variance explained, ``1 - sum ||y - y_hat||^2 / sum ||y -
    mean(y)||^2`` over the held-out rows, in the model's own units, ``y`` being what the
    dictionary predicts (an SAE: its input; a transcoder: the MLP's output); ``l0`` the mean
    number of latents active per held-out token; ``dead_latents`` the latents that did not
    fire on any training token of the last ``dead_window`` tokens seen.
    """

    fve: float
    """Held-out fraction of variance explained."""
    train_fve: float
    """The same over the last chunk of training rows (all of them when they fit in one)."""
    l0: float
    """Held-out mean active latents per token."""
    dead_latents: int
    dead_window: int
    """Training tokens over which a latent must fire at least once to count as alive."""
    steps: int
    tokens: int
    """Training tokens seen (rows x epochs)."""
    held_out_tokens: int
    seconds: float
    """Wall time of the optimisation steps (activation collection excluded)."""
    loss: np.ndarray
    """float64 ``[step]``: normalised MSE of each step (AuxK term excluded)."""
    checkpoints: tuple[Path, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        """Latents of the dictionary."""
        raise NotImplementedError

    def __post_init__(self) -> None:
        if not isinstance(self.loss, np.ndarray) or self.loss.shape != (self.steps,):
            raise ValueError(f"loss must be an array of shape ({self.steps},), one per step")
        if not 0 <= self.dead_latents <= self.width:
            raise ValueError(f"dead_latents must be in 0..{self.width}")

    @property
    def dead_fraction(self) -> float:
        return self.dead_latents / self.width

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("inf")

    def _summary(self) -> str:
        return (
            f"held-out FVE {self.fve:.3f}, L0 {self.l0:.1f}, dead {self.dead_latents}/"
            f"{self.width}, {self.steps} steps on {self.tokens} tokens in {self.seconds:.1f} s"
        )


@dataclass(frozen=True, kw_only=True, eq=False)
class SAETrainingReport(TrainingFit):
    """A trained SAE and its fit (:class:`TrainingFit`: the fields and how they are measured)."""

    sae: SparseAutoencoder

    @property
    def width(self) -> int:
        return self.sae.d_sae

    def __repr__(self) -> str:
        c = self.sae.config
        return f"SAETrainingReport(site={c.site}, d_sae={c.d_sae}, k={c.k}: {self._summary()})"


@dataclass(frozen=True, kw_only=True, eq=False)
class TranscoderTrainingReport(TrainingFit):
    """A trained transcoder and its fit: ``fve`` is of the MLP's output (:class:`TrainingFit`)."""

    transcoder: Transcoder

    @property
    def width(self) -> int:
        return self.transcoder.d_transcoder

    def __repr__(self) -> str:
        c = self.transcoder.config
        return (
            f"TranscoderTrainingReport(layer={c.layer}, d_transcoder={c.d_transcoder}, "
            f"k={c.k}: {self._summary()})"
        )
