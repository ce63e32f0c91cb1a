"""A linear probe: multinomial logistic regression in torch, full-batch L-BFGS, L2 penalty.

Features are standardized with the training rows' mean and standard deviation, so one
``l2`` suits every layer whatever the scale of its residual stream. The fitted weights are
folded back into the raw activation space: ``logits = acts @ weight.T + bias``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Below this, a feature is treated as constant (standardizing it would divide by ~0).
_MIN_STD = 1e-6


@dataclass(frozen=True)
class LinearProbe:
    """``logits = features @ weight.T + bias`` on raw (unstandardized) activations."""

    weight: np.ndarray
    """float32 [class, hidden]."""
    bias: np.ndarray
    """float32 [class]."""

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float32) @ self.weight.T + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        """int64 [row]: the class index with the largest logit."""
        return self.logits(features).argmax(axis=1).astype(np.int64)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float((self.predict(features) == labels).mean())


def fit_linear_probe(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    l2: float,
    max_iter: int = 200,
    device: str | torch.device = "cpu",
) -> LinearProbe:
    """Minimize ``mean cross-entropy + l2 / 2 * ||W||^2`` (bias not penalized).

    This is scikit-learn's ``LogisticRegression(C=1 / (l2 * n_rows))`` on standardized features.
    Starts from zero and uses full-batch L-BFGS, so the result is deterministic.

    Args:
        features: float ``[row, hidden]``.
        labels: int ``[row]`` in ``0..n_classes-1``.
        n_classes: number of classes (may exceed the classes present in ``labels``).
        l2: L2 penalty strength (>= 0).
        max_iter: L-BFGS iterations.
        device: where to train (the features are copied there).
    """
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(
            f"features must be [row, hidden] with one row per label, got {features.shape} "
            f"and {len(labels)} labels"
        )
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    x = torch.as_tensor(np.asarray(features, dtype=np.float32), device=device)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False)
    std = torch.where(std < _MIN_STD, torch.ones_like(std), std)
    x = (x - mean) / std

    weight = torch.zeros(n_classes, x.shape[1], device=device, requires_grad=True)
    bias = torch.zeros(n_classes, device=device, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight.T + bias, y)
        loss = loss + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    # no torch.set_num_threads here: the thread count is process-wide, the user's to set
    with torch.enable_grad():
        optimizer.step(closure)

    with torch.no_grad():
        raw_weight = weight / std  # fold the standardization into the weights
        raw_bias = bias - raw_weight @ mean
    return LinearProbe(
        weight=raw_weight.to("cpu", torch.float32).numpy(),
        bias=raw_bias.to("cpu", torch.float32).numpy(),
    )
