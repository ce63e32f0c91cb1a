"""The one place that knows a causal LM's parts and how to hook them.

Every analysis (``trace``, attribution, probing, the logit lens) asks :func:`anatomy` for the
embedding, the decoder layers, their attention modules, the final norm and the unembedding
instead of re-finding ``model.model.layers``; a test greps the package for anyone else doing so.

**Depth has two vocabularies, never mixed.** Decoder *layers* are ``L0 .. L{n-1}`` (what the
attention views select). Residual *sites* are the stream between them, ``0 .. n``:

====  ============  ==========================================================
site  name          what it holds
====  ============  ==========================================================
0     ``emb``       what ``L0`` receives: the input embeddings (Gemma 2 scales
                    them by sqrt(hidden) first)
i     ``after L{i-1}``  the output of decoder layer ``L{i-1}``
n     ``after L{n-1}``  the last layer's output, *before* the final norm
====  ============  ==========================================================

:func:`site_label` gives these names; ``Saliency.layers``, ``Activations.layers`` and
``ProbeResult.layers`` hold site indices, and every view and doc labels them this way.

Hooks go through :func:`~llmasos_widgets._hooks.borrowed_hooks`: :meth:`Anatomy.read_site`
and :meth:`Anatomy.replace_site` register on a caller's ``HookSet`` so they are removed with it;
:meth:`Anatomy.reading_qk` borrows the attention-interface entry (``tracing/_interface.py``)
to see each layer's post-RoPE queries and keys. :meth:`Anatomy.read_heads` and
:meth:`Anatomy.replace_heads` see or replace one layer's per-head outputs (the input of its
output projection, split by head): what head ablation and head patching write.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from llmasos_widgets._hooks import HookSet
from llmasos_widgets.models import UnsupportedArchitectureError
from llmasos_widgets.tracing._interface import CaptureFn, capturing_attention

# hidden [batch, token, hidden] of one site -> None
SiteReader = Callable[[torch.Tensor], None]
# per-head outputs [batch, token, head, head_dim] of one layer -> None / their replacement
HeadsReader = Callable[[torch.Tensor], None]
HeadsReplacer = Callable[[torch.Tensor], torch.Tensor]


def site_label(site: int) -> str:
    """Label of residual site ``site`` in views and messages: ``emb`` (0) or ``after L{site-1}``."""
    if site < 0:
        raise ValueError(f"residual sites are 0 (emb) or more, got {site}")
    return "emb" if site == 0 else f"after L{site - 1}"


def layer_output(output: Any) -> torch.Tensor:
    """The hidden state a decoder layer returned: a tensor in most transformers 5 models, the
    first element of a tuple in some (and in 4.x)."""
    return output[0] if isinstance(output, tuple) else output


def with_layer_output(output: Any, hidden: torch.Tensor) -> Any:
    """``output`` with its hidden state replaced by ``hidden``, in the same shape of return."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def _layer_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


# model -> (blocks holding it in eval mode, each module's flag before the first of them), so
# overlapping blocks (two threads tracing one model) restore the flags only when the last ends
_EVAL_HOLDS: weakref.WeakKeyDictionary[nn.Module, tuple[int, list[tuple[nn.Module, bool]]]] = (
    weakref.WeakKeyDictionary()
)
_EVAL_LOCK = threading.Lock()


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode (no dropout) for the block; each module's own ``training``
    flag is restored afterwards (``model.train(was)`` would flatten mixed flags). Blocks on one
    model may overlap (threads): the flags come back when the last of them exits."""
    with _EVAL_LOCK:
        holds, flags = _EVAL_HOLDS.get(model, (0, []))
        if holds == 0:
            flags = [(module, module.training) for module in model.modules()]
            model.eval()
        _EVAL_HOLDS[model] = (holds + 1, flags)
    try:
        yield
    finally:
        with _EVAL_LOCK:
            holds, flags = _EVAL_HOLDS.pop(model)
            if holds > 1:
                _EVAL_HOLDS[model] = (holds - 1, flags)
            else:
                for module, training in flags:
                    module.training = training


@dataclass(frozen=True, eq=False)
class Anatomy:
    """The parts of one causal LM, found once.

    Attributes:
        model: the causal LM (``LlamaForCausalLM`` ...).
        base: the decoder stack without the head (``model.model``).
        embedding: the input embedding module.
        layers: the decoder layers ``L0 .. L{n-1}``.
        attentions: each layer's attention module, in layer order.
        final_norm: the norm before the unembedding (``None`` if the model has none).
        unembedding: the LM head (``None`` for a bare base model).
        logit_softcap: final logit soft-capping (Gemma 2), ``None`` when off.
        paths: module path of each module of the model, by identity.
    """

    model: nn.Module
    base: nn.Module
    embedding: nn.Module
    layers: nn.ModuleList
    attentions: tuple[nn.Module, ...]
    final_norm: nn.Module | None
    unembedding: nn.Module | None
    logit_softcap: float | None
    paths: dict[int, str]

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_sites(self) -> int:
        """Residual sites ``0 .. n_layers``."""
        return len(self.layers) + 1

    @property
    def attention_backend(self) -> str:
        """``config._attn_implementation``: which kernel the attention layers dispatch to."""
        config = getattr(self.attentions[0], "config", None) or getattr(self.model, "config", None)
        return str(getattr(config, "_attn_implementation", None))

    def path(self, module: nn.Module) -> str:
        """The module's path in the model (``"model.layers.3.self_attn"``)."""
        return self.paths[id(module)]

    def attention_path(self, layer: int) -> str:
        return self.path(self.attentions[layer])

    def check_site(self, site: int) -> int:
        if isinstance(site, bool) or not 0 <= site <= self.n_layers:
            raise ValueError(
                f"unknown residual site {site!r}: this model has sites 0 (emb) to "
                f"{self.n_layers} ({site_label(self.n_layers)})"
            )
        return int(site)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """The model's own head on residual-stream rows: final norm, unembedding, soft-cap."""
        if self.unembedding is None:
            raise TypeError(f"{type(self.model).__name__} has no LM head (unembedding)")
        normed = hidden if self.final_norm is None else self.final_norm(hidden)
        logits = self.unembedding(normed)
        if self.logit_softcap:
            logits = torch.tanh(logits / self.logit_softcap) * self.logit_softcap
        return logits

    def read_final_norm(
        self, hooks: HookSet, read: Callable[[torch.Tensor, torch.Tensor], None]
    ) -> None:
        """Call ``read(residual, normed)`` with the final norm's input and output ``[batch,
        token, hidden]`` each forward (the same tensor twice for a model without one)."""
        if self.final_norm is None:
            self.read_site(hooks, self.n_layers, lambda hidden: read(hidden, hidden))
            return

        def read_norm(_m: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            read(args[0], output)

        hooks.forward(self.final_norm, read_norm)

    def read_site(self, hooks: HookSet, site: int, read: SiteReader) -> None:
        """Call ``read(hidden)`` with site ``site``'s ``[batch, token, hidden]`` each forward."""
        site = self.check_site(site)
        if site == 0:

            def read_input(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                read(_layer_input(args, kwargs))

            hooks.forward_pre(self.layers[0], read_input, with_kwargs=True)
            return

        def read_output(_m: nn.Module, _args: Any, output: Any) -> None:
            read(layer_output(output))

        hooks.forward(self.layers[site - 1], read_output)

    def replace_site(
        self, hooks: HookSet, site: int, replace: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        """Site ``site`` becomes ``replace(hidden)`` for the layers after it, each forward."""
        site = self.check_site(site)
        if site == 0:

            def replace_input(
                _m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> tuple[tuple[Any, ...], dict[str, Any]]:
                if args:
                    return (replace(args[0]), *args[1:]), kwargs
                return args, {**kwargs, "hidden_states": replace(kwargs["hidden_states"])}

            hooks.forward_pre(self.layers[0], replace_input, with_kwargs=True)
            return

        def replace_output(_m: nn.Module, _args: Any, output: Any) -> Any:
            return with_layer_output(output, replace(layer_output(output)))

        hooks.forward(self.layers[site - 1], replace_output)

    def output_projection(self, layer: int) -> nn.Module:
        """Layer ``layer``'s attention output projection (``o_proj``): its input is the heads'
        outputs side by side, ``[batch, token, head * head_dim]``, head-major."""
        if isinstance(layer, bool) or not 0 <= layer < self.n_layers:
            raise ValueError(
                f"unknown layer {layer!r}: this model has decoder layers 0 to {self.n_layers - 1}"
            )
        projection = self.attentions[layer].get_submodule("o_proj")
        return projection

    def read_mlp(self, hooks: HookSet, layer: int, read: SiteReader) -> None:
        """Call ``read(output)`` with layer ``layer``'s MLP output ``[batch, token, hidden]``
        (what the layer adds to the residual stream after attention) each forward."""
        self.check_direct_residual(layer)

        def read_output(_m: nn.Module, _args: Any, output: Any) -> None:
            read(output)

        hooks.forward(self.layers[layer].get_submodule("mlp"), read_output)

    def _mlp_io(
        self, hooks: HookSet, layer: int, on_mlp: Callable[[torch.Tensor, Any], Any], pre_norm: bool
    ) -> None:
        """``on_mlp(input, output)`` as a forward hook of layer ``layer``'s MLP, ``input`` being
        the MLP's input or, with ``pre_norm``, the pre-MLP norm's input (the residual stream
        between attention and MLP), stashed by a hook on that norm during the same forward."""
        self.check_direct_residual(layer)
        decoder_layer = self.layers[layer]
        stash: dict[str, torch.Tensor] = {}
        if pre_norm:

            def keep(_m: nn.Module, args: tuple[Any, ...]) -> None:
                stash["x"] = args[0]

            hooks.forward_pre(decoder_layer.get_submodule("post_attention_layernorm"), keep)

        def call(_m: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            return on_mlp(stash.pop("x") if pre_norm else args[0], output)

        hooks.forward(decoder_layer.get_submodule("mlp"), call)

    def read_mlp_pair(
        self,
        hooks: HookSet,
        layer: int,
        read: Callable[[torch.Tensor, torch.Tensor], None],
        *,
        pre_norm: bool = False,
    ) -> None:
        """Call ``read(input, output)`` with layer ``layer``'s MLP input (the pre-MLP norm's
        output; with ``pre_norm``, that norm's input) and MLP output, ``[batch, token, hidden]``
        each, every forward: what a transcoder of that layer reads and predicts."""

        def on_mlp(x: torch.Tensor, output: Any) -> None:
            read(x, output)

        self._mlp_io(hooks, layer, on_mlp, pre_norm)

    def replace_mlp(
        self,
        hooks: HookSet,
        layer: int,
        replace: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        pre_norm: bool = False,
    ) -> None:
        """Layer ``layer``'s MLP output becomes ``replace(input, output)`` each forward
        (``input`` as in :meth:`read_mlp_pair`)."""
        self._mlp_io(hooks, layer, replace, pre_norm)

    def replace_layer_outputs(
        self, hooks: HookSet, layer: int, replace: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        """Layer ``layer``'s attention output (``o_proj``'s) and its MLP output, what the layer
        adds to the residual stream, become ``replace(output)`` each forward."""
        self.check_direct_residual(layer)

        def replace_output(_m: nn.Module, _args: Any, output: Any) -> Any:
            return replace(output)

        hooks.forward(self.output_projection(layer), replace_output)
        hooks.forward(self.layers[layer].get_submodule("mlp"), replace_output)

    def attention_projection(self, layer: int, which: str) -> nn.Module:
        """Layer ``layer``'s query, key or value projection (``which``: ``"q"``, ``"k"``,
        ``"v"``): input the normed residual ``[batch, token, hidden]``, output ``[batch, token,
        heads * head_dim]``, head-major (key and value heads: ``config.num_key_value_heads``)."""
        if which not in ("q", "k", "v"):
            raise ValueError(f"which must be 'q', 'k' or 'v', got {which!r}")
        self.output_projection(layer)  # checks the index
        try:
            return self.attentions[layer].get_submodule(f"{which}_proj")
        except AttributeError as error:
            raise UnsupportedArchitectureError(
                f"{type(self.attentions[layer]).__name__} has no separate {which}_proj (fused "
                "projections are not supported for path patching)"
            ) from error

    def n_kv_heads(self, layer: int = 0) -> int:
        """Key/value heads of layer ``layer`` (fewer than :meth:`n_heads` under grouped-query
        attention: query head ``h`` reads key/value head ``h // (n_heads // n_kv_heads)``)."""
        width = getattr(self.attention_projection(layer, "k"), "out_features")  # noqa: B009
        return int(width) // self.head_dim(layer)

    def head_columns(self, layer: int, head: int, which: str) -> slice:
        """The columns of query head ``head``'s query (``which="q"``), or of the key/value
        head it reads (``"k"``, ``"v"``), in that projection's output."""
        dim = self.head_dim(layer)
        if which != "q":
            self.attention_projection(layer, which)  # checks which
            head = head // (self.n_heads(layer) // self.n_kv_heads(layer))
        return slice(head * dim, (head + 1) * dim)

    def check_direct_residual(self, layer: int) -> None:
        """Raise unless layer ``layer`` adds its attention output (``o_proj``'s) and its MLP
        output to the residual stream as they are: ``x + attn(norm(x))``, then ``+ mlp(...)``
        (LLaMA, Mistral, Qwen). Gemma 2/3 and OLMo 2 normalise both outputs first, so a head's
        output is not what reaches the residual stream."""
        self.output_projection(layer)  # checks the index
        decoder_layer = self.layers[layer]
        names = {name for name, _ in decoder_layer.named_children()}
        post_norms = sorted(names & {"pre_feedforward_layernorm", "post_feedforward_layernorm"})
        if post_norms or "mlp" not in names or "input_layernorm" not in names:
            why = f"it has {', '.join(post_norms)}" if post_norms else "its parts differ"
            raise UnsupportedArchitectureError(
                f"{type(decoder_layer).__name__} does not add its attention and MLP outputs to "
                f"the residual stream unnormalised ({why}); direct attribution to heads and "
                "MLPs needs the LLaMA layout (x + attn(norm(x)), then + mlp(norm(x)))"
            )

    def n_heads(self, layer: int = 0) -> int:
        """Query heads of layer ``layer`` (the width of its head outputs)."""
        features = self.output_projection(layer).in_features
        if not isinstance(features, int):
            raise UnsupportedArchitectureError(
                f"layer {layer}'s output projection has no integer in_features"
            )
        return features // self.head_dim(layer)

    def head_dim(self, layer: int = 0) -> int:
        attention = self.attentions[layer]
        dim = getattr(attention, "head_dim", None)
        if not isinstance(dim, int):
            raise UnsupportedArchitectureError(
                f"{type(attention).__name__} has no integer head_dim; "
                "cannot split its output by head"
            )
        return dim

    def read_heads(self, hooks: HookSet, layer: int, read: HeadsReader) -> None:
        """Call ``read(heads)`` with layer ``layer``'s per-head outputs ``[batch, token, head,
        head_dim]`` (before the output projection mixes them) each forward."""
        projection, dim = self.output_projection(layer), self.head_dim(layer)

        def read_input(_m: nn.Module, args: tuple[Any, ...]) -> None:
            merged = args[0]
            read(merged.view(*merged.shape[:-1], -1, dim))

        hooks.forward_pre(projection, read_input)

    def replace_heads(self, hooks: HookSet, layer: int, replace: HeadsReplacer) -> None:
        """Layer ``layer``'s per-head outputs ``[batch, token, head, head_dim]`` become
        ``replace(heads)`` (a new tensor, same shape) before the output projection, each
        forward. ``heads`` is a view of the attention's output: do not write into it."""
        projection, dim = self.output_projection(layer), self.head_dim(layer)

        def replace_input(_m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            merged = args[0]
            heads = replace(merged.view(*merged.shape[:-1], -1, dim))
            if heads.shape != (*merged.shape[:-1], merged.shape[-1] // dim, dim):
                raise ValueError(
                    f"replacement head outputs have shape {tuple(heads.shape)}, expected "
                    f"{(*merged.shape[:-1], merged.shape[-1] // dim, dim)}"
                )
            return (heads.reshape(merged.shape), *args[1:])

        hooks.forward_pre(projection, replace_input)

    def layer_norms(self, layer: int) -> tuple[nn.Module, nn.Module]:
        """Layer ``layer``'s two norms: the one before attention (``input_layernorm``) and the
        one before the MLP (``post_attention_layernorm``), whose output is the MLP's input."""
        self.check_direct_residual(layer)
        decoder_layer = self.layers[layer]
        return (
            decoder_layer.get_submodule("input_layernorm"),
            decoder_layer.get_submodule("post_attention_layernorm"),
        )

    def mlp(self, layer: int) -> nn.Module:
        """Layer ``layer``'s MLP: reads the pre-MLP norm's output, adds its output to the
        residual stream."""
        self.check_direct_residual(layer)
        return self.layers[layer].get_submodule("mlp")

    def reading_qk(self, on_capture: CaptureFn) -> AbstractContextManager[None]:
        """While open, ``on_capture(module, layer, q, k, kwargs)`` sees every attention call of
        this model's layers (the fast kernel still computes the output)."""
        return capturing_attention(list(self.attentions), on_capture)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's decoder layers ``L0 .. L{n-1}`` (``model.layers`` in the LLaMA family)."""
    return _find_layers(model)[1]


def _find_layers(model: nn.Module) -> tuple[nn.Module, nn.ModuleList]:
    config: Any = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_layers = getattr(text_config, "num_hidden_layers", None)
    get_decoder: Any = getattr(model, "get_decoder", None)
    candidates = [get_decoder() if callable(get_decoder) else None]
    candidates.append(getattr(model, "base_model", model))
    for base in candidates:
        layers = getattr(base, "layers", None)
        if (
            isinstance(base, nn.Module)
            and isinstance(layers, nn.ModuleList)
            and len(layers) > 0
            and (n_layers is None or len(layers) == n_layers)
            and all(hasattr(layer, "self_attn") for layer in layers)
        ):
            return base, layers
    raise UnsupportedArchitectureError(
        f"{type(model).__name__} has no decoder `layers` with `self_attn` where the LLaMA "
        "family keeps them (model.layers); supported: LLaMA-family causal LMs"
    )


def anatomy(model: nn.Module) -> Anatomy:
    """Find ``model``'s parts. Raises :class:`UnsupportedArchitectureError` (a ``ValueError``)
    when it has no LLaMA-family decoder stack."""
    base, layers = _find_layers(model)
    get_embeddings: Any = getattr(model, "get_input_embeddings", None)
    embedding = get_embeddings() if callable(get_embeddings) else None
    if not isinstance(embedding, nn.Module):
        raise UnsupportedArchitectureError(f"{type(model).__name__} has no input embedding")
    get_head: Any = getattr(model, "get_output_embeddings", None)
    unembedding = get_head() if callable(get_head) else None
    norm = getattr(base, "norm", None)
    config: Any = getattr(model, "config", None)
    cap = getattr(config, "final_logit_softcapping", None)
    return Anatomy(
        model=model,
        base=base,
        embedding=embedding,
        layers=layers,
        attentions=tuple(layer.get_submodule("self_attn") for layer in layers),
        final_norm=norm if isinstance(norm, nn.Module) else None,
        unembedding=unembedding if isinstance(unembedding, nn.Module) else None,
        logit_softcap=float(cap) if cap else None,
        paths={id(module): name for name, module in model.named_modules()},
    )
