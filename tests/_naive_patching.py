"""The naive patching loop: one forward pass per patched cell (batch 1), as TransformerLens's
``generic_activation_patch`` runs it. The reference that the batched
:func:`~llmasos_widgets.interventions.activation_patching` is tested and benchmarked against;
not meant for use (it is ``cells`` times slower in forward passes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.interventions._runs import forward_logits
from llmasos_widgets.targets import TargetLike, resolve_target
from llmasos_widgets.tracing import anatomy, eval_mode


def naive_patching(
    model: Any, clean: str, corrupted: str, *, target: TargetLike, tokenizer: Any = None
) -> tuple[np.ndarray, np.ndarray, float, float, int]:
    """Raw ``(residual [site, position], heads [layer, head], clean, corrupted, passes)`` for
    the last position's ``target``: every cell patched in its own forward pass."""
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    hf_model = explainable.hf_model
    parts = anatomy(hf_model)
    clean_ids, corrupted_ids = explainable.encode(clean), explainable.encode(corrupted)
    n_tokens = int(clean_ids.shape[1])
    sites: dict[int, torch.Tensor] = {}
    heads: dict[int, torch.Tensor] = {}
    passes = 0
    with torch.no_grad(), eval_mode(hf_model):
        with borrowed_hooks() as hooks:
            for site in range(parts.n_sites):
                parts.read_site(hooks, site, _keeper(sites, site))
            for layer in range(parts.n_layers):
                parts.read_heads(hooks, layer, _keeper(heads, layer))
            clean_logits = forward_logits(hf_model, clean_ids, keep=1)[:, 0]
        corrupted_logits = forward_logits(hf_model, corrupted_ids, keep=1)[:, 0]
        passes += 2
        bound = resolve_target(
            target, explainable.tokenizer, position=n_tokens - 1, logits_at_position=clean_logits[0]
        )

        def run(patch: Any) -> float:
            nonlocal passes
            with borrowed_hooks() as hooks:
                patch(hooks)
                passes += 1
                return float(bound(forward_logits(hf_model, corrupted_ids, keep=1)[:, 0])[0])

        residual = np.zeros((parts.n_sites, n_tokens), np.float32)
        for site in range(parts.n_sites):
            for pos in range(n_tokens):

                def set_site(h: torch.Tensor, s: int = site, p: int = pos) -> torch.Tensor:
                    out = h.clone()
                    out[:, p] = sites[s][p]
                    return out

                residual[site, pos] = run(
                    lambda hooks, s=site, f=set_site: parts.replace_site(hooks, s, f)
                )
        n_heads = parts.n_heads()
        head_map = np.zeros((parts.n_layers, n_heads), np.float32)
        for layer in range(parts.n_layers):
            for head in range(n_heads):

                def set_head(o: torch.Tensor, x: int = layer, h: int = head) -> torch.Tensor:
                    out = o.clone()
                    out[:, :, h] = heads[x][:, h]
                    return out

                head_map[layer, head] = run(
                    lambda hooks, x=layer, f=set_head: parts.replace_heads(hooks, x, f)
                )
    clean_value = float(bound(clean_logits)[0])
    corrupted_value = float(bound(corrupted_logits)[0])
    return residual, head_map, clean_value, corrupted_value, passes


def _keeper(store: dict[int, torch.Tensor], key: int) -> Any:
    def keep(values: torch.Tensor) -> None:
        store[key] = values[0].clone()

    return keep
