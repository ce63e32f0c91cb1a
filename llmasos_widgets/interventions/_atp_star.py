"""AtP*'s two fixes to attribution patching (Kramár et al. 2024, "AtP*").

**The QK fix.** A query or key node reaches the target first through its own head's softmax,
which a first-order estimate linearises; where attention saturates (one key takes weight ~1)
that gradient is ~0 and the estimate misses a large effect. The fix recomputes the head's
attention exactly with the clean query (or key) against the corrupted run's keys (queries) and
values, and linearises only from the head's output on: ``(o_patched - o) . dM/do``. Heads
attend independently, so one attention call with *every* head's query clean gives each head's
patched output at once (likewise for keys, per key/value head's group).

**GradDrop.** A node's direct and indirect effects can cancel in the gradient. For each layer
``l`` the backward pass runs again with the gradient through layer ``l``'s residual
contributions (attention and MLP outputs) dropped; a node's score is the mean over layers of
the absolute estimate, ``sum_l |AtP_l(n)| / (L - 1)`` (the term of the node's own layer is 0).
It ranks nodes; it has no sign.
"""

from __future__ import annotations

from typing import Any

import torch

from llmasos_widgets.tracing import Anatomy, AttentionSpec, attention_pattern


class QKCapture:
    """Post-RoPE queries/keys (``[2, head, token, d]``, rows clean and corrupted), the value
    projections and each layer's :class:`AttentionSpec`, detached, from one forward."""

    def __init__(self, parts: Anatomy) -> None:
        self.parts = parts
        self.queries: dict[int, torch.Tensor] = {}
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.specs: dict[int, AttentionSpec] = {}

    def record(self, hooks: Any) -> Any:
        """Hooks for the values; returns the context manager that reads queries and keys."""
        for layer in range(self.parts.n_layers):

            def keep_values(_m: Any, _a: Any, output: torch.Tensor, layer: int = layer) -> None:
                self.values[layer] = output.detach()

            hooks.forward(self.parts.attention_projection(layer, "v"), keep_values)

        def capture(_module: Any, layer: int, query: Any, key: Any, kwargs: Any) -> None:
            self.queries[layer], self.keys[layer] = query.detach(), key.detach()
            self.specs[layer] = AttentionSpec.of_call(query, key, kwargs)

        return self.parts.reading_qk(capture)

    def patched_outputs(self, layer: int, which: str) -> torch.Tensor:
        """float32 ``[token, head, d]``: each head's output on the corrupted row with its
        query (``"q"``) or its key head's keys (``"k"``) clean, minus its unpatched output."""
        q, k = self.queries[layer], self.keys[layer]
        base = self._outputs(layer, q[1], k[1])
        patched = (
            self._outputs(layer, q[0], k[1]) if which == "q" else self._outputs(layer, q[1], k[0])
        )
        return patched - base

    def _outputs(self, layer: int, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        spec = self.specs[layer]
        dim = self.parts.head_dim(layer)
        values = self.values[layer][1]  # [token, kv_head * d], the corrupted row
        values = values.view(values.shape[0], -1, dim).transpose(0, 1).float()  # [kv, token, d]
        pattern = attention_pattern(q, k, spec)  # float32 [head, query, key]
        values = values.repeat_interleave(spec.n_kv_groups, dim=0)
        return torch.matmul(pattern, values).transpose(0, 1)  # [token, head, d]


class _GradGate(torch.autograd.Function):
    """Identity forward; backward passes the gradient unless ``gate[0]`` names this layer."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, gate: list[int], layer: int) -> torch.Tensor:
        ctx.gate, ctx.layer = gate, layer
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return (torch.zeros_like(grad) if ctx.gate[0] == ctx.layer else grad), None, None


class GradDropGates:
    """One gate per layer on its residual contributions; :attr:`dropped` is the layer whose
    gradient the next backward pass drops (-1: none)."""

    def __init__(self, parts: Anatomy) -> None:
        self.parts = parts
        self._gate = [-1]

    def record(self, hooks: Any) -> None:
        for layer in range(self.parts.n_layers):

            def gate(output: torch.Tensor, layer: int = layer) -> torch.Tensor:
                gated: torch.Tensor = _GradGate.apply(output, self._gate, layer)
                return gated

            self.parts.replace_layer_outputs(hooks, layer, gate)

    @property
    def dropped(self) -> int:
        return self._gate[0]

    @dropped.setter
    def dropped(self, layer: int) -> None:
        self._gate[0] = layer
