"""``splice_transcoders``: the model with MLPs replaced by their transcoders, inside a block.

Through the capture layer (``Anatomy.replace_mlp`` on a borrowed hook set), each spliced
layer's MLP output becomes its transcoder's prediction from that forward's own MLP input, at
every position of every forward in the block (``model(...)``, ``generate``, ``explain``). The
MLP still runs (its output is discarded): the hook sits on its output. On exit, after success
or error, the hooks are gone; nothing else about the model changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.features._transcoder import Transcoder
from llmasos_widgets.tracing import anatomy


def check_transcoders_for(
    model: Any, transcoders: Transcoder | Sequence[Transcoder]
) -> list[Transcoder]:
    """``transcoders`` as a list, after checking each replaces an MLP ``model`` has, of its
    width, and that no layer has two. ``model``: an ``ExplainableModel`` or a ``transformers``
    model."""
    chosen = [transcoders] if isinstance(transcoders, Transcoder) else list(transcoders)
    if not chosen:
        raise ValueError("transcoders is empty: pass at least one Transcoder")
    config = getattr(model, "config", None)
    hidden = getattr(config, "hidden_size", None)
    n_layers = getattr(config, "num_hidden_layers", None)
    if not isinstance(hidden, int) or not isinstance(n_layers, int):
        raise TypeError(f"expected a model with a config, got {type(model).__name__}")
    seen: set[int] = set()
    for i, transcoder in enumerate(chosen):
        if not isinstance(transcoder, Transcoder):
            raise TypeError(f"transcoders[{i}] is {type(transcoder).__name__}, not a Transcoder")
        c = transcoder.config
        if c.layer >= n_layers:
            raise ValueError(
                f"transcoders[{i}] replaces layer {c.layer}, but the model has decoder layers "
                f"0 to {n_layers - 1}"
            )
        if (c.d_in, c.d_out) != (hidden, hidden):
            raise ValueError(
                f"transcoders[{i}] maps {c.d_in} -> {c.d_out} values but the model's MLPs map "
                f"{hidden} -> {hidden}; was it trained on another model "
                f"({c.model_name or 'not recorded'})?"
            )
        if c.layer in seen:
            raise ValueError(f"two transcoders replace layer {c.layer}; pass one per layer")
        seen.add(c.layer)
    return chosen


def splice_transcoders(
    model: Any, transcoders: Transcoder | Sequence[Transcoder]
) -> AbstractContextManager[None]:
    """Within the block, each transcoder's layer has its MLP output replaced by the
    transcoder's prediction (its error term dropped)::

        with splice_transcoders(model, transcoders):
            model.hf_model(input_ids=ids)   # the replacement model

    ``transcoders``: one :class:`Transcoder` or several (at most one per layer; layers without
    one keep their MLP). The arguments are checked when this is called, not when the block
    starts.
    """
    chosen = check_transcoders_for(model, transcoders)
    hf_model = getattr(model, "hf_model", model)
    if not isinstance(hf_model, torch.nn.Module):
        raise TypeError(
            f"model must be an ExplainableModel or a transformers model, got {type(model).__name__}"
        )
    parts = anatomy(hf_model)
    for transcoder in chosen:
        parts.check_direct_residual(transcoder.layer)

    def predictor(transcoder: Transcoder) -> Any:
        def predict(x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
            device = transcoder.W_dec.device
            return transcoder(x.to(device)).to(output.device, output.dtype)

        return predict

    @contextmanager
    def block() -> Iterator[None]:
        with borrowed_hooks() as hooks:
            for transcoder in chosen:
                parts.replace_mlp(
                    hooks,
                    transcoder.layer,
                    predictor(transcoder),
                    pre_norm=transcoder.config.input_site == "resid_mid",
                )
            yield

    return block()
