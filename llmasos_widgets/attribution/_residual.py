"""Running a causal LM with its residual stream read or replaced at one site.

Sites index the residual stream: site 0 is the input embeddings (what ``inputs_embeds``
carries), site ``i`` (1..L) the output of decoder layer ``i`` (``layers[i - 1]``), before the
final norm. Every hook goes through :func:`~llmasos_widgets._hooks.borrowed_hooks`.

Replacing site ``i > 0`` with a batch of ``k`` hidden states runs the prefix (embeddings and
layers ``1..i``) once with batch 1, then the forward hook of layer ``i`` returns the ``k``
rows: the later layers broadcast the batch-1 rotary tables and causal mask, so the prefix is
not recomputed ``k`` times. The prefix holds no tensor that requires grad, so gradients taken
with respect to the substituted rows stop at the site.

Memory of one forward + backward at real size (an 8B model at T = 4096 keeps ~26 GB of
activations for a plain backward) is bounded two ways, both leaving the numbers unchanged:
``recompute=True`` keeps only each decoder layer's input and recomputes the layer in the
backward (activation checkpointing, :func:`recomputed_in_backward`), and ``offload=True``
copies each site's gradient to host memory as soon as the backward produces it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from llmasos_widgets._gather import execution_device
from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.tracing import anatomy


@contextmanager
def recomputed_in_backward(layers: nn.ModuleList) -> Iterator[None]:
    """Activation checkpointing of every layer while the block runs, restored afterwards.

    Each layer's ``forward`` is wrapped (on the instance, so accelerate's own wrapper, which
    also sits there, is kept inside and put back) to run under non-reentrant
    :func:`torch.utils.checkpoint.checkpoint` when gradients are on. Module hooks stay outside
    the checkpoint, so they run once per forward, not again in the backward. The recomputed
    forward is the same computation, so gradients are bitwise those without checkpointing.
    """
    replaced: list[tuple[nn.Module, Any]] = []
    try:
        for layer in layers:
            own = layer.__dict__.get("forward")  # None: the class's forward
            inner = layer.forward

            def forward(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
                if not torch.is_grad_enabled():
                    return _inner(*args, **kwargs)
                return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

            replaced.append((layer, own))
            layer.forward = forward
        yield
    finally:
        for layer, own in replaced:
            if own is None:
                del layer.forward
            else:
                layer.forward = own


class ResidualRunner:
    """Forward passes of ``hf_model`` on one sequence, reading or replacing residual sites.

    All tensors here are ``[batch, token, hidden]`` unless named otherwise; logits are those
    of the last position only (``logits_to_keep=1``), ``[batch, vocab]``.
    """

    def __init__(
        self,
        hf_model: nn.Module,
        input_ids: torch.Tensor,
        *,
        recompute: bool = False,
        offload: bool = False,
    ) -> None:
        """``recompute``: checkpoint decoder layers in :meth:`gradients`; ``offload``: its
        activations and gradients are returned in host memory."""
        if input_ids.ndim != 2 or input_ids.shape[0] != 1:
            raise ValueError(f"input_ids must be [1, token], got {tuple(input_ids.shape)}")
        self.model = hf_model
        self.recompute = recompute
        self.offload = offload
        self.parts = anatomy(hf_model)
        self.layers = self.parts.layers
        self.n_sites = self.parts.n_sites
        self.embedding = self.parts.embedding
        # not embedding.weight.device: an offloaded embedding keeps its weight on "meta"
        self.input_ids = input_ids.to(execution_device(self.embedding))

    def embed(self, token_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Input embeddings ``[1, token, hidden]`` of ``token_ids`` (default: the input)."""
        ids = self.input_ids if token_ids is None else token_ids
        with torch.no_grad():
            return self.embedding(ids).detach()

    def logits(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Next-token logits after the last position, ``[batch, vocab]``."""
        out = self.model(inputs_embeds=inputs_embeds, use_cache=False, logits_to_keep=1)
        return out.logits[:, -1]

    def capture(
        self, inputs_embeds: torch.Tensor, sites: list[int]
    ) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """One no-grad pass: ``{site: [token, hidden]}`` activations and ``[vocab]`` logits."""
        captured: dict[int, torch.Tensor] = {}
        if 0 in sites:
            captured[0] = inputs_embeds[0].detach()
        with borrowed_hooks() as hooks, torch.no_grad():
            for site in sites:
                if site > 0:
                    self.parts.read_site(hooks, site, self._recorder(captured, site))
            logits = self.logits(inputs_embeds)
        return captured, logits[0]

    @staticmethod
    def _recorder(store: dict[int, torch.Tensor], site: int) -> Any:
        def record(hidden: torch.Tensor) -> None:
            store[site] = hidden[0].detach()

        return record

    def logits_with_site(
        self, site: int, hidden: torch.Tensor, prefix_embeds: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``[k, vocab]`` with ``site`` replaced by ``hidden`` (``[k, token, hidden]``).

        ``prefix_embeds`` (``[1, token, hidden]``) feeds the layers before the site; it is
        ignored for site 0, where ``hidden`` itself is the ``inputs_embeds``.
        """
        if site == 0:
            return self.logits(hidden)

        with borrowed_hooks() as hooks:
            self.parts.replace_site(hooks, site, lambda _computed: hidden)
            return self.logits(prefix_embeds)

    def gradients(
        self, inputs_embeds: torch.Tensor, sites: list[int], target: Any
    ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """Activations and ``d target / d activation`` at every site from one forward+backward.

        Gradients are taken with ``torch.autograd.grad`` with respect to the lowest site only
        (so no parameter's ``.grad`` is touched); the higher sites' gradients are read by
        tensor hooks as the backward passes them, and kept (or offloaded) at once.
        """
        leaf = inputs_embeds.detach().requires_grad_(True)
        live: dict[int, torch.Tensor] = {0: leaf}
        grads: dict[int, torch.Tensor] = {}
        lowest = sites[0]

        def read_gradient(site: int) -> Any:
            def read(grad: torch.Tensor) -> None:
                grads[site] = self._keep(grad[0])

            return read

        def keeper(site: int) -> Any:
            def keep(hidden: torch.Tensor) -> None:
                live[site] = hidden
                if site != lowest:
                    hidden.register_hook(read_gradient(site))

            return keep

        with ExitStack() as stack:
            hooks = stack.enter_context(borrowed_hooks())
            stack.enter_context(torch.enable_grad())
            if self.recompute:
                stack.enter_context(recomputed_in_backward(self.layers))
            for site in sites:
                if site > 0:
                    self.parts.read_site(hooks, site, keeper(site))
            value = target(self.logits(leaf))
            (lowest_grad,) = torch.autograd.grad(value.sum(), [live[lowest]])
            grads[lowest] = self._keep(lowest_grad[0])
        activations = {site: self._keep(live[site][0].detach()) for site in sites}
        _wait_for_host_copies()
        return activations, {site: grads[site] for site in sites}

    def _keep(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` detached; in pinned host memory (copy not yet waited for) with offload."""
        tensor = tensor.detach()
        if not self.offload or tensor.device.type != "cuda":
            return tensor
        host = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu", pin_memory=True)
        return host.copy_(tensor, non_blocking=True)


def _wait_for_host_copies() -> None:
    """Non-blocking device -> host copies must be complete before the host reads them."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index in range(torch.cuda.device_count()):
            torch.cuda.synchronize(index)
