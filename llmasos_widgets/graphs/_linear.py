"""The local replacement model of one prompt as an explicit linear map, and its transpose.

With the attention patterns and norm scales of the real run frozen (:mod:`._frozen`) and each
MLP replaced by what its transcoder's active features write plus an error vector, every step
of the model is linear in the residual stream (in float32, for sequence length ``T``)::

    r_0 = embeddings
    m_l = r_l + o_proj(pattern_l @ v_proj(attention_norm_l(r_l)))       # per head, GQA
    x_l = mlp_norm_l(m_l)                                                # the MLP's input
    r_{l+1} = m_l + x_l @ W_skip_l + writes_l                            # writes: features,
    logits = unembedding(final_norm(r_L))                                # b_dec, error

A transcoder whose ``config.input_site`` is ``"resid_mid"`` (circuit-tracer's LLaMA files)
reads ``m_l`` instead of ``x_l``: its encoder and skip connection then see the residual
stream before the pre-MLP norm.

:meth:`ReplacementSystem.forward` runs this map; :meth:`ReplacementSystem.backward` runs its
transpose for a batch of read-out vectors (a feature's encoder column at ``x_l``, a logit's
unembedding row at the final norm's output) and hands each write site's gradient to a reader:
the direct effect of a node written there is that gradient dotted with the node's vector. The
transpose stops at the read-out's own layer, so only paths through frozen attention, norms,
residual connections and skip connections count: a path through another node is not direct.
Gradients are kept only for positions up to the last read-out position (causal attention:
later positions cannot reach it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from llmasos_widgets.features import Transcoder
from llmasos_widgets.graphs._frozen import FrozenRun
from llmasos_widgets.tracing import Anatomy

# (layer whose MLP output the gradient is at, or -1 for the embeddings; gradient [B, P, d])
GradientReader = Callable[[int, torch.Tensor], None]


def _weight(module: object) -> torch.Tensor:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight matrix")
    return weight.detach()


def _bias(module: object) -> torch.Tensor | None:
    bias = getattr(module, "bias", None)
    return bias.detach().float() if isinstance(bias, torch.Tensor) else None


class ReplacementSystem:
    """The frozen linear map of one prompt (module docstring), on float32 tensors."""

    def __init__(self, parts: Anatomy, run: FrozenRun, transcoders: Sequence[Transcoder]) -> None:
        self.parts, self.run, self.transcoders = parts, run, list(transcoders)
        self.n_layers = parts.n_layers
        self.n_heads, self.head_dim = parts.n_heads(), parts.head_dim()
        self.n_kv_heads = parts.n_kv_heads()
        self.device = run.embeddings.device
        self.reads_normed = [
            getattr(tc.config, "input_site", "mlp_in") == "mlp_in" for tc in self.transcoders
        ]

    # ---- weights, read as needed (a float32 model's tensors are used in place) --------------

    def value_weight(self, layer: int) -> torch.Tensor:
        """``[kv_head * head_dim, d]``: the value projection."""
        return _weight(self.parts.attention_projection(layer, "v")).float().to(self.device)

    def output_weight(self, layer: int) -> torch.Tensor:
        """``[d, head * head_dim]``: the output projection."""
        return _weight(self.parts.output_projection(layer)).float().to(self.device)

    def skip_weight(self, layer: int) -> torch.Tensor | None:
        skip = self.transcoders[layer].W_skip
        return None if skip is None else skip.detach().float().to(self.device)

    def head_values(self, layer: int, normed: torch.Tensor, *, biases: bool) -> torch.Tensor:
        """``normed [..., P, d]`` (attention-norm output) -> values ``[..., P, head, head_dim]``,
        each query head's (grouped-query heads repeated)."""
        values = normed @ self.value_weight(layer).T
        bias = _bias(self.parts.attention_projection(layer, "v"))
        if biases and bias is not None:
            values = values + bias.to(self.device)
        values = values.unflatten(-1, (self.n_kv_heads, self.head_dim))
        return values.repeat_interleave(self.n_heads // self.n_kv_heads, dim=-2)

    # ---- the map ------------------------------------------------------------------------------

    def attention(self, layer: int, residual: torch.Tensor, *, biases: bool) -> torch.Tensor:
        """Layer ``layer``'s attention output ``[T, d]`` for ``residual`` ``[T, d]``."""
        normed = self.run.attention_norms[layer].apply(residual)
        values = self.head_values(layer, normed, biases=biases)  # [T, head, head_dim]
        mixed = torch.einsum("htu,uhd->thd", self.run.patterns[layer], values)
        out = mixed.flatten(-2) @ self.output_weight(layer).T
        bias = _bias(self.parts.output_projection(layer))
        return out + bias.to(self.device) if biases and bias is not None else out

    def forward(
        self,
        embeddings: torch.Tensor,
        writes: Sequence[torch.Tensor],
        *,
        biases: bool,
        residuals: list[torch.Tensor] | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Run the map: ``embeddings [T, d]`` and each layer's ``writes [T, d]`` (what its
        replaced MLP adds besides the skip connection) -> (what each layer's transcoder
        reads ``[T, d]``, the final norm's output ``[T, d]``). ``biases=False`` drops the
        attention projections' biases, making the map homogeneous. ``residuals``, when
        given, receives ``r_l`` (what layer ``l`` receives) for every layer."""
        residual = embeddings.float()
        mlp_inputs = []
        for layer in range(self.n_layers):
            if residuals is not None:
                residuals.append(residual)
            middle = residual + self.attention(layer, residual, biases=biases)
            mlp_input = self.run.mlp_norms[layer].apply(middle)
            if not self.reads_normed[layer]:
                mlp_input = middle
            mlp_inputs.append(mlp_input)
            residual = middle + writes[layer]
            skip = self.skip_weight(layer)
            if skip is not None:
                residual = residual + mlp_input @ skip
        return mlp_inputs, self.run.final_norm.apply(residual)

    def attention_transpose(self, layer: int, grad: torch.Tensor) -> torch.Tensor:
        """The gradient ``[B, P, d]`` at the attention output, pulled back to its input."""
        positions = grad.shape[1]
        pattern = self.run.patterns[layer][:, :positions, :positions]
        at_heads = (grad @ self.output_weight(layer)).unflatten(-1, (self.n_heads, self.head_dim))
        at_values = torch.einsum("htu,bthd->buhd", pattern, at_heads)
        groups = self.n_heads // self.n_kv_heads
        at_values = at_values.unflatten(2, (self.n_kv_heads, groups)).sum(3).flatten(-2)
        return self.run.attention_norms[layer].apply(at_values @ self.value_weight(layer))

    def backward(
        self,
        layers: torch.Tensor,
        positions: torch.Tensor,
        vectors: torch.Tensor,
        read: GradientReader,
        read_attention: GradientReader | None = None,
    ) -> None:
        """Pull ``B`` read-out vectors back through the map, calling ``read`` at each write site.

        Args:
            layers: ``[B]`` where each read-out sits: layer ``l`` reads its transcoder's input,
                ``n_layers`` reads the final norm's output.
            positions: ``[B]`` the read-out's token position.
            vectors: ``[B, d]`` the read-out direction (a feature's encoder column, a logit's
                unembedding row).
            read: called with ``(l, grad)`` for ``l = top - 1 .. 0`` (the MLP output of layer
                ``l``), then ``(-1, grad)`` (the embeddings), where ``top`` is the highest
                read-out layer; ``grad [B, P, d]`` covers positions ``0 .. P-1``, ``P`` one past
                the last read-out position. A row's gradient is zero at sites at or above its
                own read-out layer.
            read_attention: when given, called with ``(l, grad)`` at layer ``l``'s attention
                output (``m_l``) for ``l = top .. 0`` (``top < n_layers``).
        """
        batch = torch.arange(len(layers), device=self.device)
        layers, positions = layers.to(self.device), positions.to(self.device)
        vectors = vectors.float().to(self.device)
        n_positions = int(positions.max()) + 1
        top = int(layers.max())
        grad = torch.zeros(len(layers), n_positions, vectors.shape[1], device=self.device)
        final = layers == self.n_layers
        if bool(final.any()):
            norm = self.run.final_norm
            grad[batch[final], positions[final]] += (
                vectors[final] * norm.scale[positions[final], None] * norm.weight
            )
        for layer in range(min(top, self.n_layers - 1), -1, -1):
            if layer < top:  # a read-out at layer l sees no write of layer l or later
                read(layer, grad)
            skip = self.skip_weight(layer)
            at_input = grad @ skip.T if skip is not None else None
            here = layers == layer
            if bool(here.any()):
                at_input = at_input if at_input is not None else torch.zeros_like(grad)
                at_input[batch[here], positions[here]] += vectors[here]
            if at_input is not None and self.reads_normed[layer]:
                grad = grad + self.run.mlp_norms[layer].apply(at_input)
            elif at_input is not None:
                grad = grad + at_input
            if read_attention is not None:
                read_attention(layer, grad)
            grad = grad + self.attention_transpose(layer, grad)
        read(-1, grad)
