"""Target-side saliency of a generation: a ``[generated token, site, source token]`` tensor.

Row ``i`` attributes generated token ``i`` -- its log-probability at the step that produced
it, the :class:`~llmasos_widgets.attribution.NextToken` target ``attribute()`` uses by default
for a token -- to every earlier token (prompt and earlier generated tokens), at every residual
site. Row ``i`` equals ``attribute(model, ids, target=NextToken(g_i), position=p_i - 1,
method=...)`` for the generated token ``g_i`` at position ``p_i`` (tested for every method).

Batching (what makes N rows cost well under N calls, bench/bench_generation.py), chosen by
the method's ``generation_batch``:

* ``"gradient"`` (every ``GradientMethod``: ``gradient``, ``input_x_gradient``): the
  sequence is replicated in a batch, batch row ``b`` reads its own target at its own
  position; one forward and one backward of the batch give every row's gradients at every
  site (batch rows do not mix, so row ``b``'s gradient is that of its own target alone).
* ``"occlusion"``: one occluded forward (token ``t`` replaced by the baseline at a site) changes
  every target after ``t`` at once, so ``T`` occluded forwards give all rows, not ``N·T``.
* ``None`` (``integrated_gradients``, whose adaptive nodes depend on each target's path, and
  any method that sets no batching): one ``attribute()`` per row, exact but not faster.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from llmasos_widgets._gather import execution_device, stack_on
from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets.attribution._residual import recomputed_in_backward
from llmasos_widgets.attribution._saliency import Saliency, _check_array, _check_record_format
from llmasos_widgets.targets import NextToken, ResolvedTarget
from llmasos_widgets.tracing import anatomy, eval_mode, site_label

if TYPE_CHECKING:
    from llmasos_widgets.attribution._methods import GradientMethod

FORMAT = "llmasos-generation-saliency"
FORMAT_VERSION = 1
# Activation memory one batch of replicated sequences may keep for the backward pass.
_BATCH_MEMORY_BUDGET = 2 << 30


@dataclass(frozen=True, kw_only=True, eq=False)
class SaliencyMatrix:
    """Saliency of every generated token, ``scores`` float32 ``[generated, site, token]``.

    Attributes:
        scores: row ``i``, site ``s``: attributions of generated token ``i`` (its log-prob
            at ``target_positions[i]``) to every token; tokens after the target hold 0.
        sites: int64 ``[site]`` residual sites (0 = ``emb``, ``i`` = ``after L{i-1}``).
        tokens, token_ids: the whole sequence (prompt + completion).
        target_positions: int64 ``[generated]``: the position whose next-token logits chose
            generated token ``i`` (its own position minus one).
        f_x: float32 ``[generated]``: each target's value, ``log p(token)``.
        f_baseline: float32 ``[generated]`` with the baseline in place, or ``None``.
    """

    scores: np.ndarray
    sites: np.ndarray
    tokens: tuple[str, ...]
    token_ids: np.ndarray
    target_positions: np.ndarray
    f_x: np.ndarray
    method: str
    baseline: str = ""
    f_baseline: np.ndarray | None = None
    score: str = "logprob"

    def __post_init__(self) -> None:
        scores = _check_array("scores", self.scores, np.float32, 3)
        _check_array("sites", self.sites, np.int64, 1)
        _check_array("token_ids", self.token_ids, np.int64, 1)
        positions = _check_array("target_positions", self.target_positions, np.int64, 1)
        _check_array("f_x", self.f_x, np.float32, 1)
        object.__setattr__(self, "tokens", tuple(str(t) for t in self.tokens))
        n_rows, n_sites, n_tokens = scores.shape
        if self.sites.shape != (n_sites,) or positions.shape != (n_rows,):
            raise ValueError(
                f"scores is {scores.shape}: need sites ({n_sites},) and target_positions "
                f"({n_rows},); got {self.sites.shape} and {positions.shape}"
            )
        if len(self.tokens) != n_tokens or self.token_ids.shape != (n_tokens,):
            raise ValueError(f"scores has {n_tokens} token columns but {len(self.tokens)} tokens")
        if self.f_x.shape != (n_rows,):
            raise ValueError(f"f_x must have shape ({n_rows},), got {self.f_x.shape}")
        if self.f_baseline is not None:
            f_baseline = _check_array("f_baseline", self.f_baseline, np.float32, 1)
            if f_baseline.shape != (n_rows,):
                raise ValueError(f"f_baseline must have shape ({n_rows},)")
        if n_rows and not (positions.min() >= 0 and positions.max() < n_tokens - 1):
            raise ValueError(f"target_positions must lie in 0..{n_tokens - 2}")
        if not self.method:
            raise ValueError("method must be a non-empty name")
        for array in (scores, self.sites, self.token_ids, positions, self.f_x, self.f_baseline):
            if array is not None:
                array.setflags(write=False)

    @property
    def n_generated(self) -> int:
        return int(self.scores.shape[0])

    def matrix(self, site: int = 0) -> np.ndarray:
        """float32 ``[generated, token]`` at residual site ``site`` (default: embeddings)."""
        hits = np.flatnonzero(self.sites == site)
        if hits.size == 0:
            raise KeyError(f"site {site} was not computed; available: {self.sites.tolist()}")
        return self.scores[:, int(hits[0])]

    def row(self, index: int) -> Saliency:
        """Generated token ``index``'s attributions as a :class:`Saliency` (today's map)."""
        if not -self.n_generated <= index < self.n_generated:
            raise IndexError(f"generated token {index} is out of range 0..{self.n_generated - 1}")
        index %= self.n_generated
        position = int(self.target_positions[index])
        token_id = int(self.token_ids[position + 1])
        target = ResolvedTarget(
            "next_token", "logprob", position, token_id, self.tokens[position + 1]
        )
        f_x = float(self.f_x[index])
        return Saliency(
            scores=np.array(self.scores[index]),
            layers=np.array(self.sites),
            tokens=self.tokens,
            token_ids=np.array(self.token_ids),
            method=self.method,
            baseline=self.baseline,
            target=target.description,
            target_position=position,
            target_token_ids=(token_id,),
            target_probability=min(float(np.exp(f_x)), 1.0),
            f_x=f_x,
            f_baseline=None if self.f_baseline is None else float(self.f_baseline[index]),
        )

    @property
    def site_names(self) -> tuple[str, ...]:
        return tuple(site_label(int(site)) for site in self.sites)

    # -- serialisation (inside an explanation file) -------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "scores": self.scores,
            "sites": self.sites,
            "token_ids": self.token_ids,
            "target_positions": self.target_positions,
            "f_x": self.f_x,
        }
        if self.f_baseline is not None:
            arrays["f_baseline"] = self.f_baseline
        return arrays

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "tokens": list(self.tokens),
            "method": self.method,
            "baseline": self.baseline,
            "score": self.score,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> SaliencyMatrix:
        _check_record_format(
            metadata, what="generation saliency", format=FORMAT, version=FORMAT_VERSION
        )
        return cls(
            scores=np.array(arrays["scores"]),
            sites=np.array(arrays["sites"]),
            token_ids=np.array(arrays["token_ids"]),
            target_positions=np.array(arrays["target_positions"]),
            f_x=np.array(arrays["f_x"]),
            f_baseline=np.array(arrays["f_baseline"]) if "f_baseline" in arrays else None,
            tokens=tuple(metadata["tokens"]),
            method=metadata["method"],
            baseline=metadata["baseline"],
            score=metadata.get("score", "logprob"),
        )


def attribute_generation(
    model: Any,
    token_ids: torch.Tensor | np.ndarray,
    prompt_length: int,
    *,
    method: str = "gradient",
    baseline: str | None = None,
    batch_size: int | None = None,
    tokenizer: Any = None,
    **attribute_kwargs: Any,
) -> SaliencyMatrix:
    """Saliency of each token after ``prompt_length`` in ``token_ids`` (``[token]`` or
    ``[1, token]``), as a :class:`SaliencyMatrix` over every residual site.

    ``batch_size``: replicated sequences per pass (``None``: about 2 GiB of activations).
    ``attribute_kwargs`` go to ``attribute()`` for methods without a batched path
    (``n_steps``, ``integration``, ...)."""
    from llmasos_widgets.attribution._attribute import (
        _RECOMPUTE_ABOVE,
        _activation_bytes,
        _baseline_embeddings,
        as_input_ids,
        attribute,
        default_baseline,
    )
    from llmasos_widgets.attribution._methods import get_method
    from llmasos_widgets.attribution._residual import ResidualRunner
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    attribution_method = get_method(method)
    if isinstance(token_ids, np.ndarray):  # e.g. Explanation.token_ids
        token_ids = torch.from_numpy(np.asarray(token_ids, dtype=np.int64))
    ids = as_input_ids(explainable, token_ids, truncate=False)
    n_tokens = int(ids.shape[1])
    if not 1 <= prompt_length < n_tokens:
        raise ValueError(
            f"prompt_length must be in 1..{n_tokens - 1} (at least one generated token), "
            f"got {prompt_length}"
        )
    positions = torch.arange(prompt_length - 1, n_tokens - 1)
    generated = ids[0, prompt_length:]
    tokens = tuple(explainable.tokens(ids))
    flat_ids = ids[0].cpu().numpy().astype(np.int64)
    name = attribution_method.name

    if attribution_method.generation_batch is None:
        rows = [
            attribute(
                explainable,
                ids,
                target=NextToken(int(token)),
                method=name,
                baseline=baseline,
                position=int(position),
                **attribute_kwargs,
            )
            for position, token in zip(positions.tolist(), generated.tolist(), strict=True)
        ]
        f_base = [row.f_baseline for row in rows]
        return SaliencyMatrix(
            scores=np.stack([row.scores for row in rows]),
            sites=np.array(rows[0].layers),
            tokens=tokens,
            token_ids=flat_ids,
            target_positions=positions.numpy().astype(np.int64),
            f_x=np.array([row.f_x for row in rows], dtype=np.float32),
            f_baseline=None
            if any(v is None for v in f_base)
            else np.array(f_base, dtype=np.float32),
            method=name,
            baseline=rows[0].baseline,
        )

    hf_model = explainable.hf_model
    parts = anatomy(hf_model)
    sites = list(range(parts.n_sites))
    with torch.inference_mode(False), eval_mode(hf_model):
        runner = ResidualRunner(hf_model, ids)
        embeds = runner.embed()
        if attribution_method.generation_batch == "occlusion":
            chosen = baseline or default_baseline(attribution_method, explainable.tokenizer)
            baseline_embeds, baseline_name = _baseline_embeddings(
                chosen, runner, explainable.tokenizer, n_tokens
            )
            scores, f_x, f_baseline = _occlusion(
                parts, hf_model, embeds, baseline_embeds, sites, positions, generated, batch_size
            )
        else:
            per_row = _activation_bytes(hf_model, n_rows=1, n_tokens=n_tokens)
            rows_per_pass = batch_size or max(1, _BATCH_MEMORY_BUDGET // max(per_row, 1))
            # as attribute(): above ~1 GiB of saved activations per sequence each decoder
            # layer is recomputed in the backward (same numbers, ~1/3 more time)
            recompute = per_row > _RECOMPUTE_ABOVE
            scores, f_x = _gradient_rows(
                parts,
                hf_model,
                embeds,
                sites,
                positions,
                generated,
                rows_per_pass,
                cast("GradientMethod", attribution_method),  # generation_batch == "gradient"
                recompute,
            )
            baseline_name, f_baseline = "", None
    return SaliencyMatrix(
        scores=scores,
        sites=np.asarray(sites, dtype=np.int64),
        tokens=tokens,
        token_ids=flat_ids,
        target_positions=positions.numpy().astype(np.int64),
        f_x=f_x,
        f_baseline=f_baseline,
        method=name,
        baseline=baseline_name,
    )


def _target_logprobs(
    parts: Any, last_hidden: torch.Tensor, positions: torch.Tensor, tokens: torch.Tensor
) -> torch.Tensor:
    """``log p(tokens[b])`` after ``positions[b]``, read from batch row ``b`` of
    ``last_hidden`` (``[batch, token, hidden]``, the last residual site) -> ``[batch]``; with
    one batch row, every target reads that row."""
    rows = torch.arange(len(positions), device=last_hidden.device)
    source = rows if last_hidden.shape[0] > 1 else torch.zeros_like(rows)
    hidden = last_hidden[source, positions.to(last_hidden.device)]
    # with a device_map the head may live on another device than the last layer
    logits = parts.head(hidden.to(execution_device(parts.unembedding))).float()
    return torch.log_softmax(logits, dim=-1)[rows, tokens.to(logits.device)]


def _gradient_rows(
    parts: Any,
    hf_model: Any,
    embeds: torch.Tensor,
    sites: list[int],
    positions: torch.Tensor,
    generated: torch.Tensor,
    rows_per_pass: int,
    method: GradientMethod,
    recompute: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Replicated-batch forward + backward: ``[generated, site, token]`` and ``[generated]``."""
    n_rows, n_tokens = len(positions), embeds.shape[1]
    scores = np.zeros((n_rows, len(sites), n_tokens), dtype=np.float32)
    f_x = np.zeros(n_rows, dtype=np.float32)
    for start in range(0, n_rows, rows_per_pass):
        chunk = slice(start, min(start + rows_per_pass, n_rows))
        chunk_positions = positions[chunk]
        kept = int(chunk_positions.max()) + 1  # later tokens cannot matter (causal)
        leaf = embeds[:, :kept].expand(len(chunk_positions), -1, -1).clone().requires_grad_(True)
        live: dict[int, torch.Tensor] = {0: leaf}
        last: dict[str, torch.Tensor] = {}

        def keeper(site: int, live: dict[int, torch.Tensor] = live) -> Any:
            def keep(hidden: torch.Tensor) -> None:
                live[site] = hidden

            return keep

        with ExitStack() as stack:
            hooks = stack.enter_context(borrowed_hooks())
            stack.enter_context(torch.enable_grad())
            if recompute:
                stack.enter_context(recomputed_in_backward(parts.layers))
            for site in sites[1:]:
                parts.read_site(hooks, site, keeper(site))
            parts.read_site(hooks, sites[-1], lambda hidden, last=last: last.update(h=hidden))
            hf_model(inputs_embeds=leaf, use_cache=False, logits_to_keep=1)
            values = _target_logprobs(parts, last["h"], chunk_positions, generated[chunk])
            grads = torch.autograd.grad(values.sum(), [live[site] for site in sites])
        per_site = [
            method.token_scores(live[site].detach(), grad)
            for site, grad in zip(sites, grads, strict=True)
        ]
        block = stack_on(per_site, "cpu").permute(1, 0, 2).numpy()  # [row, site, kept]
        for offset, position in enumerate(chunk_positions.tolist()):
            scores[start + offset, :, : position + 1] = block[offset, :, : position + 1]
        f_x[chunk] = values.detach().float().cpu().numpy()
    return scores, f_x


def _occlusion(
    parts: Any,
    hf_model: Any,
    embeds: torch.Tensor,
    baseline_embeds: torch.Tensor,
    sites: list[int],
    positions: torch.Tensor,
    generated: torch.Tensor,
    batch_size: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each occluded forward (one token at one site) scores every target at once."""
    n_rows, n_tokens = len(positions), embeds.shape[1]
    kept = int(positions.max()) + 1
    chunk = batch_size or kept

    def values_with(site: int, hidden: torch.Tensor | None, source: torch.Tensor) -> torch.Tensor:
        """Every target's log-prob for each of the ``k`` rows ``hidden`` at ``site``:
        ``[k, generated]`` (``hidden=None``: the plain run of ``source`` embeddings)."""
        last: dict[str, torch.Tensor] = {}
        with borrowed_hooks() as hooks, torch.no_grad():
            if hidden is not None and site > 0:
                parts.replace_site(hooks, site, lambda _computed: hidden)
            parts.read_site(hooks, sites[-1], lambda h: last.update(h=h))
            inputs = hidden if hidden is not None and site == 0 else source
            hf_model(inputs_embeds=inputs, use_cache=False, logits_to_keep=1)
            rows = [
                _target_logprobs(parts, last["h"][row : row + 1], positions, generated)
                for row in range(last["h"].shape[0])
            ]
        return torch.stack(rows)

    activations = _site_activations(parts, hf_model, embeds[:, :kept], sites)
    baseline_acts = _site_activations(parts, hf_model, baseline_embeds[:, :kept], sites)
    f_x = values_with(0, None, embeds[:, :kept])[0].double()
    f_baseline = values_with(0, None, baseline_embeds[:, :kept])[0]
    scores = np.zeros((n_rows, len(sites), n_tokens), dtype=np.float32)
    for index, site in enumerate(sites):
        x, b = activations[site], baseline_acts[site]
        for start in range(0, kept, chunk):
            occluded_at = torch.arange(start, min(start + chunk, kept), device=x.device)
            occluded = x.expand(len(occluded_at), -1, -1).clone()
            rows = torch.arange(len(occluded_at), device=x.device)
            occluded[rows, occluded_at] = b[occluded_at]
            drops = f_x[None] - values_with(site, occluded, embeds[:, :kept]).double()
            scores[:, index, start : start + len(occluded_at)] = drops.T.float().cpu().numpy()
    after_target = np.arange(n_tokens)[None, :] > positions.numpy()[:, None]
    scores[np.broadcast_to(after_target[:, None, :], scores.shape)] = 0.0
    return (
        scores,
        f_x.float().cpu().numpy(),
        f_baseline.float().cpu().numpy(),
    )


def _site_activations(
    parts: Any, hf_model: Any, embeds: torch.Tensor, sites: list[int]
) -> dict[int, torch.Tensor]:
    """``{site: [token, hidden]}`` of one plain no-grad pass."""
    captured: dict[int, torch.Tensor] = {0: embeds[0]}

    def recorder(site: int) -> Any:
        return lambda hidden: captured.__setitem__(site, hidden[0].detach())

    with borrowed_hooks() as hooks, torch.no_grad():
        for site in sites[1:]:
            parts.read_site(hooks, site, recorder(site))
        hf_model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1)
    return captured
