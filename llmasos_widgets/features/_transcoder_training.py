"""``train_transcoder``: a TopK transcoder trained to predict one layer's MLP output from its input.

The recipe, streaming, held-out split, checkpoints and metrics are ``train_sae``'s
(``_training.py``: OpenAI's TopK recipe with AuxK, decoder rows kept unit-norm); only the pairs
differ. Rows come from :func:`llmasos_widgets.probing.activations` with ``read="mlp"``: the
MLP's input (the pre-MLP norm's output) and its output, in one forward. The input is scaled so
its mean row norm is ``sqrt(d_in)`` and the target so its own is ``sqrt(d_out)`` while
training (one learning rate for every width); both scales are folded into the weights at the
end and in every checkpoint, so the transcoder reads and writes the model's own units.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmasos_widgets.features._report import TranscoderTrainingReport
from llmasos_widgets.features._training import (
    Positions,
    Split,
    _check_int,
    _device,
    _fit,
    _mean_norm_scale,
    _model_name,
    _optimise,
    _provenance,
    _seeded,
    _stream,
    _trainer,
    _width,
    sites_collector,
)
from llmasos_widgets.features._transcoder import Transcoder, TranscoderConfig


def _pairs(d_in: int, input_scale: float = 1.0, output_scale: float = 1.0) -> Split:
    """Rows ``[input | output]`` -> (input, output), each times its training scale."""

    def split(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return rows[:, :d_in] * input_scale, rows[:, d_in:] * output_scale

    return split


@torch.no_grad()
def _unscaled(trained: Transcoder, input_scale: float, output_scale: float) -> Transcoder:
    """A copy of ``trained`` (fit to inputs x ``input_scale`` and outputs x ``output_scale``)
    that reads and writes unscaled vectors: the same pre-activations, so the same latents."""
    out = Transcoder(trained.config).to(trained.W_dec.device)
    out.W_enc.copy_(trained.W_enc * input_scale)
    out.b_enc.copy_(trained.b_enc)
    out.W_dec.copy_(trained.W_dec / output_scale)
    out.b_dec.copy_(trained.b_dec / output_scale)
    out.threshold.copy_(trained.threshold)
    if trained.W_skip is not None and out.W_skip is not None:
        out.W_skip.copy_(trained.W_skip * (input_scale / output_scale))
    return out.eval()


def train_transcoder(
    model: Any,
    layer: int,
    texts: Sequence[str],
    *,
    width: int | None = None,
    k: int = 32,
    skip_connection: bool = False,
    positions: Positions = "all",
    epochs: int = 1,
    batch_size: int = 4096,
    lr: float | None = None,
    seed: int = 0,
    held_out: float = 0.1,
    aux_k: int | None = None,
    aux_coefficient: float = 1 / 32,
    dead_window: int | None = None,
    skip_bos: bool = True,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    chunk_texts: int = 4096,
    activation_batch_size: int = 32,
    client: Any = None,
    device: str | torch.device | None = None,
    _collect: Callable[[list[str]], np.ndarray] | None = None,
) -> tuple[Transcoder, TranscoderTrainingReport]:
    """Train a TopK transcoder of ``width`` latents replacing decoder layer ``layer``'s MLP.

    It reads what the MLP reads (the pre-MLP norm's output) and predicts what the MLP writes.
    Every argument but ``layer`` and ``skip_connection`` means what it means for
    :func:`~llmasos_widgets.features.train_sae` (streaming, ``client=`` for Dask, the held-out
    split, ``positions``, the AuxK loss, checkpoints).

    Args:
        layer: decoder layer ``L{layer}`` whose MLP is replaced (0 .. n_layers - 1).
        skip_connection: also learn a linear skip ``W_skip`` from input to output
            (circuit-tracer's skip transcoders), trained jointly from zero.
        checkpoint_dir: with it, the transcoder is saved (circuit-tracer's layout,
            ``save_transcoder``) to ``checkpoint_dir/step-{step}`` every ``checkpoint_every``
            steps and to ``checkpoint_dir/final``.

    Returns:
        ``(transcoder, report)``: the transcoder (eval mode, in the model's units) and a
        :class:`TranscoderTrainingReport` whose ``fve`` is the held-out fraction of the MLP
        output's variance it explains (``report.transcoder`` is the same object).
    """
    layer = _check_int("layer", layer, 0)
    train_texts, held_texts, first, chunks = _stream(
        model, layer, texts, "mlp", k=k, epochs=epochs, batch_size=batch_size,
        positions=positions, held_out=held_out, seed=seed, skip_bos=skip_bos,
        checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
        chunk_texts=chunk_texts, activation_batch_size=activation_batch_size, client=client,
        collect=_collect,
    )  # fmt: skip
    d_model = first.shape[1] // 2
    width = _width(width, d_model, k)
    scale_in, scale_out = _mean_norm_scale(first[:, :d_model]), _mean_norm_scale(first[:, d_model:])
    config = TranscoderConfig(
        d_in=d_model, d_transcoder=width, d_out=d_model, layer=layer, activation="topk", k=k,
        skip_connection=skip_connection, model_name=_model_name(model),
        metadata=_provenance(positions, seed, "train_transcoder"),
    )  # fmt: skip
    transcoder = _seeded(Transcoder, config, seed)
    transcoder.to(_device(model, device))
    split = _pairs(d_model, scale_in, scale_out)
    with torch.no_grad():
        x, y = split(torch.from_numpy(first).to(transcoder.W_dec.device))
        transcoder.W_enc.copy_(transcoder.W_dec.T)  # as for SAEs: encoder starts as decoder.T
        transcoder.b_enc.copy_(-(x.mean(0) @ transcoder.W_enc))  # centred pre-activations
        transcoder.b_dec.copy_(y.mean(0))
    trainer = _trainer(
        transcoder, lr, k, aux_k, aux_coefficient, dead_window, batch_size, len(first), split
    )

    def save(name: str) -> Path:
        from llmasos_widgets.features._transcoder_files import save_transcoder

        path = Path(str(checkpoint_dir)) / name
        save_transcoder(_unscaled(transcoder, scale_in, scale_out), path)
        return path

    run = _optimise(
        trainer, first, chunks, batch_size=batch_size, seed=seed,
        checkpoint_every=checkpoint_every, save=None if checkpoint_dir is None else save,
    )  # fmt: skip
    result = _unscaled(transcoder, scale_in, scale_out)
    result.config.metadata.update(input_scale=scale_in, output_scale=scale_out)
    held = run.collect_held(held_texts)
    fve, l0 = _fit(result, held, batch_size, _pairs(d_model))
    train_fve, _ = _fit(result, run.last_rows, batch_size, _pairs(d_model))
    report = TranscoderTrainingReport(
        transcoder=result, fve=fve, train_fve=train_fve, l0=l0, held_out_tokens=len(held),
        **run.report_fields(trainer, batch_size, epochs, len(train_texts), len(held_texts)),
    )  # fmt: skip
    return result, report


def train_transcoders(
    model: Any, texts: Sequence[str], *, layers: Sequence[int] | None = None, **options: Any
) -> tuple[list[Transcoder], list[TranscoderTrainingReport]]:
    """:func:`train_transcoder` for each of ``layers`` (default: every decoder layer), with
    the same ``options``: ``(transcoders, reports)``, in the order of ``layers`` (so with the
    default, ``transcoders[i]`` replaces layer ``i``'s MLP).

    One forward pass collects every layer's pairs; while the training texts fit in one chunk
    (``chunk_texts``) they are kept for all layers (memory: every layer's pairs at once), so
    the model runs once, not once per layer. The result equals training each layer alone.
    """
    if layers is None:
        config = getattr(model, "config", None) or getattr(model.hf_model, "config", None)
        n_layers = getattr(config, "num_hidden_layers", None)
        if not isinstance(n_layers, int):
            raise TypeError("pass layers=[...]: the model's config does not say how many it has")
        layers = range(n_layers)
    chosen = [_check_int("layer", layer, 0) for layer in layers]
    collect = sites_collector(
        model, sorted(set(chosen)), options.get("positions", "all"),
        options.get("skip_bos", True), options.get("client"),
        options.get("activation_batch_size", 32), "mlp",
    )  # fmt: skip
    cache: dict[tuple[str, ...], dict[int, np.ndarray]] = {}

    def rows_of(layer: int) -> Callable[[list[str]], np.ndarray]:
        def collect_layer(texts: list[str]) -> np.ndarray:
            key = tuple(texts)
            if key not in cache:
                if len(cache) >= 2:  # the training chunk and the held-out texts
                    cache.clear()
                cache[key] = collect(texts)
            return cache[key][layer]

        return collect_layer

    results = [train_transcoder(model, n, texts, **options, _collect=rows_of(n)) for n in chosen]
    return [t for t, _ in results], [r for _, r in results]
