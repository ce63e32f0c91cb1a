"""The nodes of one prompt's graph and the rows of direct effects into them.

Sources are written into the residual stream: an active feature writes its activation times
its decoder row at its layer's MLP output, an error node writes the part of the MLP's output
the transcoder misses there, a token node writes its embedding at site 0. Targets read it: a
feature through its encoder column at its layer's MLP input, a logit through its unembedding
row minus the mean row at the final norm's output. :class:`Sources` lays the columns out in
circuit-tracer's order (features by layer, position, latent; errors by layer, position;
tokens) and turns a batch of targets into rows of direct effects with one transpose pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from llmasos_widgets.features import Transcoder
from llmasos_widgets.graphs._frozen import FrozenRun
from llmasos_widgets.graphs._linear import ReplacementSystem

_GATHER_FLOATS = 2**24
"""Gradient rows gathered at once when reading feature columns (64 MiB of float32)."""
_UNEMBEDDING_CHUNK = 8192
"""Vocabulary rows averaged at a time (a float32 copy of a large unembedding is gigabytes)."""


@dataclass(frozen=True, eq=False)
class Features:
    """Every active feature of the prompt, sorted by (layer, position, latent)."""

    layer: np.ndarray
    position: np.ndarray
    latent: np.ndarray
    activation: np.ndarray
    """float32: the activation (equal to the pre-activation for an active feature)."""
    encoder: torch.Tensor
    """``[n, d]``: each feature's encoder column (what its pre-activation reads)."""
    decoder: torch.Tensor
    """``[n, d]``: activation times decoder row (what it writes)."""
    encoder_bias: torch.Tensor
    """``[n]``."""

    def __len__(self) -> int:
        return len(self.layer)


def read_features(
    run: FrozenRun, transcoders: Sequence[Transcoder]
) -> tuple[Features, torch.Tensor]:
    """The active features of every layer and the error vectors ``[layer, T, d]``: the MLP's
    real output minus the transcoder's prediction (decoder bias and skip included)."""
    device = run.embeddings.device
    layers, positions, latents, values = [], [], [], []
    encoders, decoders, biases, errors = [], [], [], []
    for layer, transcoder in enumerate(transcoders):
        normed = getattr(transcoder.config, "input_site", "mlp_in") == "mlp_in"
        x = run.transcoder_input(layer, normed).to(transcoder.W_enc.device)
        with torch.no_grad():
            codes = transcoder.encode(x).float()
            prediction = transcoder.decode(codes.to(transcoder.W_dec.dtype), x).float()
            position, latent = codes.nonzero(as_tuple=True)
            value = codes[position, latent]
            encoders.append(transcoder.W_enc.detach()[:, latent].T.float().to(device))
            decoders.append((transcoder.W_dec.detach()[latent].float() * value[:, None]).to(device))
            biases.append(transcoder.b_enc.detach()[latent].float().to(device))
        errors.append(run.mlp_outputs[layer] - prediction.to(device))
        layers.append(np.full(len(latent), layer, dtype=np.int64))
        positions.append(position.cpu().numpy().astype(np.int64))
        latents.append(latent.cpu().numpy().astype(np.int64))
        values.append(value.cpu().numpy().astype(np.float32))
    features = Features(
        layer=np.concatenate(layers),
        position=np.concatenate(positions),
        latent=np.concatenate(latents),
        activation=np.concatenate(values),
        encoder=torch.cat(encoders),
        decoder=torch.cat(decoders),
        encoder_bias=torch.cat(biases),
    )
    return features, torch.stack(errors)


def mean_unembedding(weight: torch.Tensor) -> torch.Tensor:
    """``[d]``: the mean of the unembedding's rows, in float32, a chunk of rows at a time."""
    total = torch.zeros(weight.shape[1], dtype=torch.float64, device=weight.device)
    for start in range(0, weight.shape[0], _UNEMBEDDING_CHUNK):
        total += weight[start : start + _UNEMBEDDING_CHUNK].detach().double().sum(0)
    return (total / weight.shape[0]).float()


class Sources:
    """The source columns of a graph: features, then errors (layer-major), then tokens."""

    def __init__(self, features: Features, errors: torch.Tensor, embeddings: torch.Tensor) -> None:
        self.features, self.errors, self.embeddings = features, errors, embeddings
        self.n_layers, self.n_tokens = int(errors.shape[0]), int(errors.shape[1])
        self.error_offset = len(features)
        self.token_offset = self.error_offset + self.n_layers * self.n_tokens
        self.n_columns = self.token_offset + self.n_tokens
        keys = features.layer * self.n_tokens + features.position  # sorted
        bounds = np.searchsorted(keys, np.arange(self.n_layers * self.n_tokens + 1))
        self._spans = bounds.reshape(-1)  # features of (layer, position) k: spans[k]:spans[k+1]
        self._positions = torch.from_numpy(features.position).to(embeddings.device)

    def rows(
        self,
        system: ReplacementSystem,
        layers: torch.Tensor,
        positions: torch.Tensor,
        vectors: torch.Tensor,
    ) -> torch.Tensor:
        """float32 ``[B, n_columns]``: the direct effect of every source on each target."""
        out = torch.zeros(len(layers), self.n_columns, device=self.embeddings.device)

        def read(layer: int, grad: torch.Tensor) -> None:
            n = grad.shape[1]
            if layer < 0:
                start = self.token_offset
                out[:, start : start + n] = torch.einsum("bpd,pd->bp", grad, self.embeddings[:n])
                return
            start = self.error_offset + layer * self.n_tokens
            out[:, start : start + n] = torch.einsum("bpd,pd->bp", grad, self.errors[layer, :n])
            # this layer's features at positions < n, gathered a chunk at a time
            lo = int(self._spans[layer * self.n_tokens])
            hi = int(self._spans[layer * self.n_tokens + n])
            step = max(1, _GATHER_FLOATS // (grad.shape[0] * grad.shape[2]))
            for first in range(lo, hi, step):
                last = min(first + step, hi)
                at = grad[:, self._positions[first:last]]  # [B, chunk, d]
                out[:, first:last] = torch.einsum(
                    "bnd,nd->bn", at, self.features.decoder[first:last]
                )

        system.backward(layers, positions, vectors, read)
        return out
