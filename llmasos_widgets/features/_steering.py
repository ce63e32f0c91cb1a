"""Interventions through an SAE's dictionary: steering, feature ablation, splicing.

Each is a context manager around hooks borrowed from the capture layer
(``Anatomy.replace_site`` on a :func:`~llmasos_widgets._hooks.borrowed_hooks` set): inside
the block every forward of the model -- ``model(...)``, ``model.generate(...)``,
``model.explain(...)`` -- has the SAE's site rewritten at every position of that forward (so
during cached generation: the prompt once, then each new token), or only at the ``positions``
given (see :func:`position_mask`); on exit, after success or error, the hooks are gone. Nothing
else about the model (train/eval flags, gradients) changes.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.features._positions import Positions, position_mask
from llmasos_widgets.features._sae import SparseAutoencoder
from llmasos_widgets.features._sae_files import check_sae_for
from llmasos_widgets.tracing import Anatomy, anatomy


def _parts(model: Any, sae: SparseAutoencoder) -> Anatomy:
    """The capture layer of ``model`` (an ``ExplainableModel`` or a ``transformers`` model),
    after checking that ``sae`` reads a site this model has, of its width."""
    if not isinstance(sae, SparseAutoencoder):
        raise TypeError(f"sae must be a SparseAutoencoder, got {type(sae).__name__}")
    hf_model = getattr(model, "hf_model", model)
    if not isinstance(hf_model, torch.nn.Module):
        raise TypeError(
            f"model must be an ExplainableModel or a transformers model, got {type(model).__name__}"
        )
    check_sae_for(model, sae)
    parts = anatomy(hf_model)
    parts.check_site(sae.site)
    return parts


def _rewriting(
    model: Any,
    sae: SparseAutoencoder,
    rewrite: Callable[[torch.Tensor], torch.Tensor],
    positions: Positions = None,
) -> AbstractContextManager[None]:
    """The block that rewrites ``sae``'s site with ``rewrite``, only at ``positions``."""
    parts = _parts(model, sae)  # checked now, not at the block's start: errors point here
    where = position_mask(positions)

    def rewrite_at(hidden: torch.Tensor, position_ids: torch.Tensor | None) -> torch.Tensor:
        mask = where(hidden, position_ids)
        if mask is None:
            return rewrite(hidden)
        # torch.where, not a masked sum: the positions left alone stay bitwise as they were
        return torch.where(mask.unsqueeze(-1), rewrite(hidden), hidden)

    @contextmanager
    def block() -> Iterator[None]:
        with borrowed_hooks() as hooks:
            parts.replace_site_by_position(hooks, sae.site, rewrite_at)
            yield

    return block()


def _latents(sae: SparseAutoencoder, latents: int | Sequence[int]) -> list[int]:
    chosen = [latents] if isinstance(latents, int) else list(latents)
    if not chosen:
        raise ValueError("latents is empty: name at least one latent")
    for latent in chosen:
        if isinstance(latent, bool) or not isinstance(latent, int):
            raise TypeError(f"latents must be ints, got {latent!r}")
        sae._check_latent(latent)
    return sorted(set(chosen))


def steer(
    model: Any,
    sae: SparseAutoencoder,
    latent: int,
    alpha: float,
    *,
    positions: Positions = None,
) -> AbstractContextManager[None]:
    """Within the block, add ``alpha * sae.direction(latent)`` to the SAE's site at every
    position of every forward of ``model``, or only at ``positions``::

        with steer(model, sae, latent=12, alpha=-8.0):
            model.generate("the keys near the cabinet", max_new_tokens=3)

    ``sae.direction(latent)`` is the latent's unit-norm decoder row (in the site's units), so
    ``alpha`` is the latent activation added. ``model``: an ``ExplainableModel`` or a bare
    ``transformers`` model. ``positions``: ``None`` (all), an int, a list of ints, a slice or
    ``"last"``; see :func:`~llmasos_widgets.features._positions.position_mask` for what they
    mean during ``generate``.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a number, got {alpha!r}")
    (index,) = _latents(sae, latent)
    vector = float(alpha) * sae.direction(index)

    def add(hidden: torch.Tensor) -> torch.Tensor:
        return hidden + vector.to(hidden.device, hidden.dtype)

    return _rewriting(model, sae, add, positions)


def ablating_features(
    model: Any,
    sae: SparseAutoencoder,
    latents: int | Sequence[int],
    positions: Positions = None,
) -> AbstractContextManager[None]:
    """Within the block, remove ``f_i(x) * W_dec[i]`` of each latent ``i`` from the SAE's site
    at every position (or only at ``positions``, as :func:`steer`): the rest of the
    reconstruction and the SAE's error term stay, so a latent that does not fire on a token
    leaves it exactly as it was."""
    chosen = _latents(sae, latents)

    def remove(hidden: torch.Tensor) -> torch.Tensor:
        # with gradients, so saliency under the ablation (model.explain) stays exact
        weights = sae.W_dec[chosen] / sae.config.input_scale
        encoded = sae.encode(hidden.to(weights.device))[..., chosen]
        return hidden - (encoded @ weights).to(hidden.device, hidden.dtype)

    return _rewriting(model, sae, remove, positions)


def splice(model: Any, sae: SparseAutoencoder) -> AbstractContextManager[None]:
    """Within the block, the SAE's site is replaced by its reconstruction (the error term
    dropped): what the model computes when it sees only what the dictionary keeps."""

    def reconstruct(hidden: torch.Tensor) -> torch.Tensor:
        return sae(hidden.to(sae.W_dec.device)).to(hidden.device, hidden.dtype)

    return _rewriting(model, sae, reconstruct)
