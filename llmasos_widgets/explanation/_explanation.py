"""``Explanation``: everything ``explain()`` found about one text, in one saveable object.

Attention is kept as post-RoPE queries and keys (O(layer·head·token·d)), and a head's
``[query, key]`` pattern is recomputed exactly when asked for, on the device the captures
live on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llmasos_widgets._readable_tokens import (
    TokenStyle,
    readable_quoted,
    show_tokens,
    token_label,
)
from llmasos_widgets._views import render
from llmasos_widgets.explanation._row_normalisers import RowNormalisers
from llmasos_widgets.tracing import AttentionSpec, attention_pattern, kv_head

if TYPE_CHECKING:
    from llmasos_widgets.attribution import Saliency
    from llmasos_widgets.explanation._chat import MessageSpan
    from llmasos_widgets.explanation._generation import Generation
    from llmasos_widgets.explanation._lens import LensRows
    from llmasos_widgets.explanation._sinks import AttentionSinks
    from llmasos_widgets.features import FeatureActivations
    from llmasos_widgets.interventions import SavedResult
    from llmasos_widgets.views import PooledPattern

FORMAT = "llmasos-explanation"
FORMAT_VERSION = "1"


class ExplanationFileError(ValueError):
    """A file that is not a readable explanation (corrupt, truncated or of another format)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class Explanation:
    """What a model did on one text. Build with :func:`llmasos_widgets.explanation.explain`."""

    model_name: str
    tokens: tuple[str, ...]
    """Token strings exactly as the tokenizer split them, ``[token]``."""
    token_ids: np.ndarray
    """int64 ``[token]``."""
    queries: tuple[torch.Tensor, ...]
    """Per layer: post-RoPE queries ``[head, token, head_dim]``."""
    keys: tuple[torch.Tensor, ...]
    """Per layer: post-RoPE keys ``[kv_head, token, head_dim]`` (grouped-query: not repeated)."""
    specs: tuple[AttentionSpec, ...]
    """Per layer: scaling, soft-capping, sliding window and kv grouping of the attention."""
    head_summaries: Mapping[str, np.ndarray]
    """Summary name -> float32 ``[layer, head]`` (see ``explain._summaries``)."""
    top_token_ids: np.ndarray
    """int64 ``[token, k]``: the k most likely next tokens after each position."""
    top_probs: np.ndarray
    """float32 ``[token, k]``: their probabilities."""
    top_tokens: tuple[tuple[str, ...], ...]
    """``[token][k]`` strings of ``top_token_ids``."""
    logit_lens: LensRows = field(repr=False)
    """The logit lens, ``[layer + 1, token]`` (``explanation/_lens.py``): read per site when
    first asked (:meth:`lens_site`, :attr:`lens_token_ids`, ...) from the residual stream
    ``explain`` kept, or given read (``LensRows.of_arrays``, a loaded file)."""
    saliency: Saliency | None = None
    token_style: TokenStyle = field(default_factory=TokenStyle)
    """How the tokenizer writes its token strings (SentencePiece, byte-level BPE or plain), so
    views can show ``tokens`` as text (``llmasos_widgets._readable_tokens.show_tokens``)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Free-form JSON-serialisable facts (model type, dtype, versions)."""
    summary_notes: Mapping[str, str] = field(default_factory=dict)
    """Summary name -> how it was estimated, e.g. ``"estimated from 512 of 32768 query rows
    (seed 0)"``; empty when every summary is exact (see docs/long_context.md)."""
    row_normalisers: RowNormalisers = field(
        default_factory=RowNormalisers, init=False, repr=False, compare=False
    )
    """Cache of each query row's log-sum-exp, filled by pooled views (not saved)."""
    generation: Generation | None = None
    """Set by ``generate()``: which tokens were generated, their probabilities, alternatives
    and target-side saliency (``explanation/_generation.py``); ``None`` for ``explain()``."""
    messages: tuple[MessageSpan, ...] = ()
    """Set for a conversation (``explain``/``generate`` with ``messages=``): each message's
    role and token range ``[start, end)``, role header and end-of-turn tokens included
    (``explanation/_chat.py``); empty for plain text."""
    attention_sinks: AttentionSinks | None = None
    """Key positions most heads attend to whatever the query (``explanation/_sinks.py``:
    the rule, and per key the weight each head gives it); ``.positions`` are the sinks.
    ``None`` when not measured (a file saved before sinks were detected):
    :meth:`find_attention_sinks` measures them then."""
    causal_results: tuple[SavedResult, ...] = ()
    """Causal tests carried along (:meth:`attach`): activation or attribution patching, path
    patching, direct logit attribution; saved in the same file and shown in the report, one
    section each, in this order."""
    features: tuple[FeatureActivations, ...] = ()
    """Sparse-autoencoder latents per token, one record per SAE passed to
    ``explain(saes=...)`` (``features/_activations.py``); empty when none were (and in files
    saved before features were recorded)."""

    def __post_init__(self) -> None:
        n_tokens = len(self.tokens)
        n_layers = len(self.queries)
        _expect(self.token_ids.shape == (n_tokens,), "token_ids", (n_tokens,), self.token_ids)
        if n_tokens == 0:
            raise ValueError("an explanation needs at least one token")
        if not (len(self.keys) == len(self.specs) == n_layers):
            raise ValueError(
                f"queries, keys and specs must have one entry per layer; got "
                f"{n_layers}, {len(self.keys)}, {len(self.specs)}"
            )
        for layer, (q, key) in enumerate(zip(self.queries, self.keys, strict=True)):
            if q.ndim != 3 or key.ndim != 3 or q.shape[1] != n_tokens or key.shape[1] != n_tokens:
                raise ValueError(
                    f"layer {layer}: queries must be [head, {n_tokens}, d] and keys "
                    f"[kv_head, {n_tokens}, d]; got {tuple(q.shape)} and {tuple(key.shape)}"
                )
        n_heads = self.n_heads
        for name, summary in self.head_summaries.items():
            _expect(
                summary.shape == (n_layers, n_heads),
                f"head_summaries[{name!r}]",
                (n_layers, n_heads),
                summary,
            )
        k = self.top_token_ids.shape[-1] if self.top_token_ids.ndim == 2 else -1
        _expect(
            self.top_token_ids.shape == (n_tokens, k),
            "top_token_ids",
            (n_tokens, "k"),
            self.top_token_ids,
        )
        _expect(self.top_probs.shape == (n_tokens, k), "top_probs", (n_tokens, k), self.top_probs)
        lens = self.logit_lens
        if (lens.n_sites, lens.n_tokens) != (n_layers + 1, n_tokens):
            raise ValueError(
                f"logit_lens must have shape {(n_layers + 1, n_tokens)} (site, token); got "
                f"{(lens.n_sites, lens.n_tokens)}"
            )
        if self.generation is not None:
            self.generation.check(n_tokens)
        sinks = self.attention_sinks
        if sinks is not None and sinks.received.shape != (n_layers, self.n_heads, n_tokens):
            raise ValueError(
                f"attention_sinks.received must have shape {(n_layers, self.n_heads, n_tokens)}"
                f"; got {tuple(sinks.received.shape)}"
            )
        for record in self.features:
            if record.n_tokens != n_tokens:
                raise ValueError(
                    f"features {record.name!r} cover {record.n_tokens} tokens, not {n_tokens}"
                )
        if self.messages:
            from llmasos_widgets.explanation._chat import check_spans

            check_spans(self.messages, n_tokens)

    # ---- shape facts -------------------------------------------------------------------
    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def n_layers(self) -> int:
        return len(self.queries)

    @property
    def prompt_length(self) -> int:
        """Tokens of the prompt: ``tokens[prompt_length:]`` were generated (all for explain)."""
        return self.n_tokens if self.generation is None else self.generation.prompt_length

    @property
    def n_heads(self) -> int:
        return int(self.queries[0].shape[0]) if self.queries else 0

    # ---- logit lens --------------------------------------------------------------------
    @property
    def lens_token_ids(self) -> np.ndarray:
        """int64 ``[layer + 1, token]``: logit-lens top-1 next token read from each residual
        stream (row 0 = embeddings, row i = after decoder layer i; the last row is the model's
        output). Reads every site not read yet (:meth:`lens_site` reads one)."""
        return self.logit_lens.ids

    @property
    def lens_probs(self) -> np.ndarray:
        """float32 ``[layer + 1, token]``: the logit-lens probability of that token."""
        return self.logit_lens.probs

    @property
    def lens_tokens(self) -> tuple[tuple[str, ...], ...]:
        """``[layer + 1][token]`` strings of :attr:`lens_token_ids`."""
        return self.logit_lens.tokens

    def lens_site(self, site: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """One residual site's logit lens: ``(int64 ids [token], float32 probs [token],
        strings [token])``, read through the model's head on first use."""
        return self.logit_lens.site(site)

    # ---- attention ---------------------------------------------------------------------
    def attention(self, layer: int, head: int) -> np.ndarray:
        """Exact attention pattern of one head, float32 ``[query, key]`` (rows sum to 1)."""
        self._check_head(layer, head)
        queries = self.queries[layer]
        heads = torch.tensor([head], device=queries.device)
        return heads_pattern(queries, self.keys[layer], self.specs[layer], heads)[0].cpu().numpy()

    def layer_attention(self, layer: int) -> torch.Tensor:
        """All heads of one layer, float32 ``[head, query, key]``, on the captures' device."""
        self._check_head(layer, 0)
        return attention_pattern(self.queries[layer], self.keys[layer], self.specs[layer])

    def pooled_attention(
        self,
        layer: int,
        head: int,
        *,
        rows: tuple[int, int] | None = None,
        cols: tuple[int, int] | None = None,
        shape: tuple[int, int] = (512, 512),
        reduce: str = "max",
    ) -> PooledPattern:
        """One head's attention over queries ``rows`` x keys ``cols`` (default: all tokens)
        pooled into at most ``shape`` blocks by ``reduce`` ("max": the largest weight and its
        cell; "sum": the block's total weight). Computed block by block from q/k, never as
        ``[T, T]``; blocks of one cell (``exact``) hold the exact weights
        (``llmasos_widgets.views.pooled_view``)."""
        self._check_head(layer, head)
        return self._pooled(layer, [head], rows=rows, cols=cols, shape=shape, reduce=reduce)[0]

    def pooled_layer_attention(
        self,
        layer: int,
        *,
        rows: tuple[int, int] | None = None,
        cols: tuple[int, int] | None = None,
        shape: tuple[int, int] = (512, 512),
        reduce: str = "max",
    ) -> list[PooledPattern]:
        """:meth:`pooled_attention` of every head of ``layer``, computed together."""
        self._check_head(layer, 0)
        heads = list(range(self.n_heads))
        return self._pooled(layer, heads, rows=rows, cols=cols, shape=shape, reduce=reduce)

    def _pooled(self, layer: int, heads: list[int], **region: Any) -> list[PooledPattern]:
        # views lie above this package: it registers the computation (llmasos_widgets._views)
        patterns: list[PooledPattern] = render("pooled_attention", self, layer, heads, **region)
        return patterns

    def _check_head(self, layer: int, head: int) -> None:
        if not isinstance(layer, (int, np.integer)) or not 0 <= layer < self.n_layers:
            raise ValueError(
                f"layer {layer!r} is out of range: this model has layers 0..{self.n_layers - 1}"
            )
        if not isinstance(head, (int, np.integer)) or not 0 <= head < self.n_heads:
            raise ValueError(
                f"head {head!r} is out of range: each layer has heads 0..{self.n_heads - 1}"
            )

    def top_heads(self, summary: str, k: int = 5) -> list[tuple[int, int, float]]:
        """The ``k`` heads with the highest ``summary`` score, as ``(layer, head, score)``."""
        if summary not in self.head_summaries:
            raise ValueError(
                f"unknown summary {summary!r}; available: {', '.join(self.head_summaries)}"
            )
        scores = self.head_summaries[summary]
        order = np.argsort(-scores, axis=None, kind="stable")[:k]
        return [
            (int(i // self.n_heads), int(i % self.n_heads), float(scores.flat[i])) for i in order
        ]

    def saliency_by_message(self, *, absolute: bool = False) -> dict[str, np.ndarray]:
        """:attr:`saliency` summed over each message's tokens, per site: ``"{index} {role}"``
        -> float64 ``[site]`` (``"template"`` for tokens of no message, when there are any);
        the sums add up to the map's total (``absolute=True``: sums of ``|score|``)."""
        from llmasos_widgets.explanation._chat import saliency_by_message

        if self.saliency is None:
            raise ValueError("this explanation has no saliency (explain(..., saliency=False))")
        return saliency_by_message(self.saliency, self.messages, absolute=absolute)

    def find_attention_sinks(
        self,
        threshold: float | None = None,
        min_share: float | None = None,
        min_queries: int | None = None,
    ) -> AttentionSinks:
        """:attr:`attention_sinks` under the given rule (defaults: the stored rule, else
        ``_sinks.SINK_THRESHOLD`` etc.); measured from queries/keys when none are stored."""
        from llmasos_widgets.explanation._sinks import sinks_of_explanation

        sinks = self.attention_sinks
        if sinks is None:
            seed = self.metadata.get("induction_seed", 0)
            sinks = sinks_of_explanation(self, seed=int(seed) if isinstance(seed, int) else 0)
        return sinks.with_rule(threshold, min_share, min_queries)

    def feature(self, name: str | None = None) -> FeatureActivations:
        """The features of SAE ``name`` (default: the only, or first, SAE recorded)."""
        if not self.features:
            raise ValueError("this explanation has no features: pass explain(..., saes=[sae])")
        if name is None:
            return self.features[0]
        for record in self.features:
            if record.name == name:
                return record
        names = ", ".join(repr(r.name) for r in self.features)
        raise ValueError(f"no SAE named {name!r} in this explanation; recorded: {names}")

    # ---- causal results ----------------------------------------------------------------
    def attach(self, *results: SavedResult) -> Explanation:
        """A copy of this explanation that also carries ``results`` (after those already
        attached): ``PatchingResult``, ``AttributionPatchingResult``, ``PathPatchingResult``,
        ``PathPatchingMap``, ``LogitAttribution`` or ``CounterfactualResult``. :meth:`save`
        writes them into the same file and :meth:`to_html` shows each as a section of the
        report. This explanation is left as it is (it is frozen)."""
        from llmasos_widgets.interventions import SavedResult

        for result in results:
            if not isinstance(result, SavedResult):
                raise TypeError(
                    f"attach() takes causal results (PatchingResult, AttributionPatchingResult, "
                    f"PathPatchingResult, PathPatchingMap, LogitAttribution, "
                    f"CounterfactualResult), got "
                    f"{type(result).__name__}"
                )
        copy = dataclasses.replace(self, causal_results=(*self.causal_results, *results))
        # same queries and keys: the row cache stays valid, so it is shared, not recomputed
        object.__setattr__(copy, "row_normalisers", self.row_normalisers)
        return copy

    # ---- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write a single safetensors file (arrays) with JSON metadata; returns the path."""
        from llmasos_widgets.explanation._storage import save_explanation

        return save_explanation(self, Path(path))

    @classmethod
    def load(
        cls, path: str | Path, *, device: str | torch.device = "cpu", keep: str | None = None
    ) -> Explanation:
        """Read a file written by :meth:`save`. Corrupt or foreign files raise
        :class:`ExplanationFileError`. ``keep="disk"`` maps queries/keys from the file
        (pages read as views need them), ``"gpu"`` puts them on CUDA, ``"cpu"`` in memory."""
        from llmasos_widgets.explanation._disk import check_keep
        from llmasos_widgets.explanation._storage import load_explanation

        if keep is not None and check_keep(keep) == "gpu":
            if not torch.cuda.is_available():
                raise ValueError(
                    "keep='gpu' needs CUDA, which this torch does not see; use "
                    "keep='cpu' or keep='disk'"
                )
            device = device if torch.device(device).type == "cuda" else "cuda"
        elif keep is not None:
            device = "cpu"
        return load_explanation(Path(path), device=torch.device(device), keep=keep)

    def to_html(self, path: str | Path) -> Path:
        """Write a standalone HTML report (no network needed to view it); returns the path.

        The report is the ``"html"`` view registered by ``llmasos_widgets.export``."""
        from llmasos_widgets._views import render

        result: Path = render("html", self, Path(path))
        return result

    def __repr__(self) -> str:
        if self.token_style.scheme == "plain":
            text = " ".join(self.tokens)
        else:  # the decoded text, not SentencePiece/byte-level pieces
            text = "".join(token.text for token in show_tokens(self.tokens, self.token_style))
        if len(text) > 60:
            text = text[:57] + "..."
        causal = f", causal results={len(self.causal_results)}" if self.causal_results else ""
        saes = f", saes={[record.name for record in self.features]}" if self.features else ""
        return (
            f"Explanation({self.model_name!r}, tokens={self.n_tokens}, layers={self.n_layers}, "
            f"heads={self.n_heads}, saliency={'yes' if self.saliency is not None else 'no'}"
            f"{causal}{saes}, text={text!r})"
        )

    def __str__(self) -> str:
        """A few readable lines: the text, the top next tokens, the most salient tokens for
        the saliency target, and the most notable heads by each summary."""
        shown = show_tokens(self.tokens, self.token_style)
        labels = [token_label(token) for token in shown]
        last = self.n_tokens - 1
        lines = [repr(self)]
        predictions = ", ".join(
            f"{token_label(show_tokens([token], self.token_style)[0])} {p:.2f}"
            for token, p in zip(self.top_tokens[last], self.top_probs[last], strict=True)
        )
        lines.append(f"  next token: {predictions}")
        for index, message in enumerate(self.messages):
            said = "".join(token.text for token in shown[message.start : message.end])
            said = said if len(said) <= 60 else said[:57] + "..."
            lines.append(
                f"  [{index} {message.label}] tokens {message.start}..{message.end - 1}: {said!r}"
            )
        if self.generation is not None:
            lines.extend(self.generation.describe(self.tokens, self.token_style))
        if self.saliency is not None:
            row = np.abs(self.saliency.at(0))
            top = np.argsort(-row, kind="stable")[:3]
            salient = ", ".join(f"{labels[i]} {row[i]:.2f}" for i in top)
            target = readable_quoted(self.saliency.target, self.token_style)
            lines.append(f"  most salient for {target} ({self.saliency.method}): {salient}")
        for name in self.head_summaries:
            top_heads = self.top_heads(name, 3)
            heads = ", ".join(f"L{layer}.H{head} {score:.2f}" for layer, head, score in top_heads)
            lines.append(f"  top {name} heads: {heads}")
        return "\n".join(lines)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Shown as an AttentionWidget (with saliency, when present) in a notebook: the
        ``"mimebundle"`` view registered by ``llmasos_widgets.widgets``."""
        from llmasos_widgets._views import render

        return render("mimebundle", self, **kwargs)


def heads_pattern(
    queries: torch.Tensor, keys: torch.Tensor, spec: AttentionSpec, heads: torch.Tensor
) -> torch.Tensor:
    """Patterns of the query heads ``heads`` only, float32 ``[len(heads), query, key]``: each
    query head is paired with its grouped-query kv head, so no other head is computed."""
    single = dataclasses.replace(spec, n_kv_groups=1)
    return attention_pattern(queries[heads], keys[kv_head(heads, spec)], single)


def _expect(ok: bool, name: str, shape: tuple[Any, ...], array: np.ndarray) -> None:
    if not ok:
        raise ValueError(f"{name} must have shape {shape}; got {tuple(array.shape)}")
