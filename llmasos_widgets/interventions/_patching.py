"""Activation patching: run the corrupted prompt with one activation taken from the clean one.

Cells of the two maps:

* residual ``[site, position]``: residual site ``site`` (``emb``, ``after L{i}``) at one token
  position takes the clean run's value;
* heads ``[layer, head]``: one head's output (its slice before the output projection) takes
  the clean run's value at every position; with ``head_node="q"``, ``"k"`` or ``"v"`` its
  query, key or value does instead (a key or value head is shared by the query heads of its
  group under grouped-query attention: one patched run, the same score for each of them).

Each cell's score is the target normalised between the two unpatched runs,
``(patched - corrupted) / (clean - corrupted)``: 1 = the patch restores the clean behaviour,
0 = no effect. **Batched:** every cell is one row of a batch, so one forward pass carries up
to ``batch_size`` patched runs; hooks patch only their own rows. Cells that cannot change
anything are not run: positions after the target (causal attention), and residual cells whose
clean and corrupted values are equal (the shared prefix before the first differing token,
identical embeddings); their score is exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmasos_widgets._hooks import borrowed_hooks
from llmasos_widgets._readable_tokens import TokenStyle, show_tokens
from llmasos_widgets.interventions._files import SavedResult, saved_kind
from llmasos_widgets.interventions._runs import chunks, forward_logits
from llmasos_widgets.targets import TargetLike, resolve_position, resolve_target
from llmasos_widgets.tracing import Anatomy, anatomy, eval_mode, site_label

# A cell: ("residual", site, position) or ("head", layer, head)
Cell = tuple[str, int, int]

HEAD_NODES = {"output": "outputs", "q": "queries", "k": "keys", "v": "values"}
"""What a head cell patches (``head_node``): its output, or its query, key or value input."""


def check_head_node(head_node: str) -> str:
    if head_node not in HEAD_NODES:
        raise ValueError(f"head_node must be one of {sorted(HEAD_NODES)}, got {head_node!r}")
    return head_node


@saved_kind
@dataclass(frozen=True, kw_only=True)
class PatchingResult(SavedResult):
    """Activation patching of ``clean`` into ``corrupted`` (equal token length).

    Raw target values are kept (``residual_values``, ``head_values``); :attr:`residual` and
    :attr:`heads` are them normalised so the clean run is 1 and the corrupted run 0.
    """

    clean_text: str
    corrupted_text: str
    clean_tokens: tuple[str, ...]
    corrupted_tokens: tuple[str, ...]
    target: str
    """The target, e.g. ``logit('are') - logit('is') after token 5``."""
    target_position: int
    clean_value: float
    corrupted_value: float
    residual_values: np.ndarray | None
    """float32 ``[site, position]`` raw target with that residual cell patched (site 0 =
    ``emb``, site ``i`` = ``after L{i-1}``), or None when not computed."""
    head_values: np.ndarray | None
    """float32 ``[layer, head]`` raw target with that head's output patched at every position."""
    n_layers: int
    n_heads: int
    forward_passes: int
    """Forward passes this result cost (the clean and corrupted runs share the first)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    token_style: TokenStyle | None = None
    """How the tokenizer writes its token strings, so views show them as readers read them
    (byte-level pieces joined into characters); ``None`` shows the raw strings."""
    head_node: str = "output"
    """What each head cell patched: ``"output"``, ``"q"``, ``"k"`` or ``"v"``."""

    @property
    def shown_clean_tokens(self) -> tuple[str, ...]:
        """The clean tokens as readers read them."""
        return _shown(self.clean_tokens, self.token_style)

    @property
    def shown_corrupted_tokens(self) -> tuple[str, ...]:
        """The corrupted tokens as readers read them."""
        return _shown(self.corrupted_tokens, self.token_style)

    def __post_init__(self) -> None:
        check_head_node(self.head_node)
        n = len(self.clean_tokens)
        if len(self.corrupted_tokens) != n:
            raise ValueError(
                f"clean has {n} tokens and corrupted {len(self.corrupted_tokens)}; they must match"
            )
        if self.residual_values is not None and self.residual_values.shape != (
            self.n_layers + 1,
            n,
        ):
            raise ValueError(
                f"residual_values must be [site, position] = {(self.n_layers + 1, n)}, "
                f"got {self.residual_values.shape}"
            )
        if self.head_values is not None and self.head_values.shape != (self.n_layers, self.n_heads):
            raise ValueError(
                f"head_values must be [layer, head] = {(self.n_layers, self.n_heads)}, "
                f"got {self.head_values.shape}"
            )
        if self.clean_value == self.corrupted_value:
            raise ValueError("clean_value equals corrupted_value: nothing to normalise by")

    def _normalise(self, values: np.ndarray) -> np.ndarray:
        span = self.clean_value - self.corrupted_value
        return ((values.astype(np.float64) - self.corrupted_value) / span).astype(np.float32)

    @property
    def residual(self) -> np.ndarray | None:
        """float32 ``[site, position]``: normalised score (clean = 1, corrupted = 0)."""
        return None if self.residual_values is None else self._normalise(self.residual_values)

    @property
    def heads(self) -> np.ndarray | None:
        """float32 ``[layer, head]``: normalised score (clean = 1, corrupted = 0)."""
        return None if self.head_values is None else self._normalise(self.head_values)

    @property
    def sites(self) -> np.ndarray:
        """int64 ``[site]``: residual sites of the rows of :attr:`residual`, ``0 .. n_layers``."""
        return np.arange(self.n_layers + 1, dtype=np.int64)

    @property
    def site_names(self) -> tuple[str, ...]:
        return tuple(site_label(int(site)) for site in self.sites)

    @property
    def differing_positions(self) -> tuple[int, ...]:
        """Token positions where the two prompts differ."""
        pairs = zip(self.clean_tokens, self.corrupted_tokens, strict=True)
        return tuple(i for i, (a, b) in enumerate(pairs) if a != b)

    def flips(self, values: np.ndarray) -> np.ndarray:
        """bool, same shape: the patched target is on the clean run's side of zero (for a
        logit difference: the preference flipped to the clean prompt's token)."""
        return np.sign(values) == np.sign(self.clean_value)

    def to_html(self, path: str | Path) -> Path:
        """Write a standalone HTML page of both maps, the target and the prompts (the
        ``"html"`` view registered by ``llmasos_widgets.export``); returns the path."""
        from llmasos_widgets._views import render

        written: Path = render("html", self, Path(path))
        return written

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """In a notebook: the PatchingWidget (a view registered by ``widgets``)."""
        from llmasos_widgets._views import render

        return render("mimebundle", self, **kwargs)

    def __repr__(self) -> str:
        parts = [
            f"PatchingResult({self.target}: clean {self.clean_value:.4g}, "
            f"corrupted {self.corrupted_value:.4g}"
        ]
        residual = self.residual
        if residual is not None:
            site, position = np.unravel_index(int(np.argmax(residual)), residual.shape)
            parts.append(
                f"; best residual cell {site_label(int(site))} @ {position} "
                f"({self.shown_clean_tokens[position]!r}): {residual[site, position]:.3f}"
            )
        heads = self.heads
        if heads is not None:
            layer, head = np.unravel_index(int(np.argmax(heads)), heads.shape)
            parts.append(f"; best head L{layer}H{head}: {heads[layer, head]:.3f}")
        return "".join(parts) + f"; {self.forward_passes} forward passes)"


def _shown(tokens: tuple[str, ...], style: TokenStyle | None) -> tuple[str, ...]:
    return tuple(token.text for token in show_tokens(list(tokens), style or TokenStyle()))


def activation_patching(
    model: Any,
    clean: str,
    corrupted: str,
    *,
    target: TargetLike = None,
    position: int = -1,
    residual: bool = True,
    heads: bool = True,
    head_node: str = "output",
    batch_size: int = 64,
    tokenizer: Any = None,
) -> PatchingResult:
    """Patch every residual cell and every head output from ``clean`` into ``corrupted``.

    ``target`` is read after token ``position`` (default: the last): ``(" are", " is")`` for
    a logit difference, a token for its log-probability, or ``None`` for the logit difference
    between the clean and the corrupted run's own predictions. The prompts must have the
    same number of tokens. ``head_node`` is what a head cell patches: its ``"output"``, or its
    ``"q"``, ``"k"`` or ``"v"`` input. ``batch_size`` patched runs share one forward pass.
    """
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    hf_model = explainable.hf_model
    clean_ids, corrupted_ids, clean_tokens, corrupted_tokens = encode_pair(
        explainable, clean, corrupted
    )
    if not residual and not heads:
        raise ValueError("nothing to patch: residual=False and heads=False")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_head_node(head_node)
    n_tokens = int(clean_ids.shape[1])
    at = resolve_position(position, n_tokens)
    # causal attention: tokens after the target position cannot change it
    both = torch.cat([clean_ids, corrupted_ids])[:, : at + 1]
    parts = anatomy(hf_model)
    with torch.no_grad(), eval_mode(hf_model):
        store = CleanStore(parts, residual=residual, heads=heads, head_node=head_node)
        with borrowed_hooks() as hooks:
            store.record(hooks)
            logits = forward_logits(hf_model, both, keep=1)[:, 0]
        bound, clean_value, corrupted_value = bind_pair_target(
            target, explainable.tokenizer, at, logits
        )
        cells = store.cells(n_tokens=at + 1)
        values = {cell: corrupted_value for cell in store.no_op_cells(n_tokens=at + 1)}
        patched, passes = patched_values(hf_model, store, both[1:], bound, cells, batch_size)
        values.update(patched)
        passes += 1
    n_heads = parts.n_heads()
    residual_values = head_values = None
    if residual:
        residual_values = np.full((parts.n_sites, n_tokens), corrupted_value, np.float32)
        for (kind, site, pos), value in values.items():
            if kind == "residual":
                residual_values[site, pos] = value
    if heads:
        head_values = np.zeros((parts.n_layers, n_heads), np.float32)
        for (kind, layer, head), value in values.items():
            if kind == "head":
                head_values[layer, store.group(layer, head)] = value
    return PatchingResult(
        clean_text=clean,
        corrupted_text=corrupted,
        clean_tokens=tuple(clean_tokens),
        corrupted_tokens=tuple(corrupted_tokens),
        target=bound.description,
        target_position=at,
        clean_value=clean_value,
        corrupted_value=corrupted_value,
        residual_values=residual_values,
        head_values=head_values,
        n_layers=parts.n_layers,
        n_heads=n_heads,
        token_style=TokenStyle.of(explainable.tokenizer),
        forward_passes=passes,
        metadata={"model": explainable.name, "batch_size": batch_size, "patched_runs": len(cells)},
        head_node=head_node,
    )


def patched_values(
    hf_model: Any,
    store: CleanStore,
    corrupted_ids: torch.Tensor,
    bound: Any,
    cells: list[Cell],
    batch_size: int,
) -> tuple[dict[Cell, float], int]:
    """The target with each of ``cells`` patched alone into the corrupted run (``[1, T]``),
    ``batch_size`` cells per forward pass; returns the values and the passes run."""
    values: dict[Cell, float] = {}
    passes = 0
    with torch.no_grad():
        for chunk in chunks(cells, batch_size):
            rows = corrupted_ids.expand(len(chunk), -1)
            with borrowed_hooks() as hooks:
                store.patch(hooks, chunk)
                patched = bound(forward_logits(hf_model, rows, keep=1)[:, 0])
            passes += 1
            values.update(zip(chunk, (float(v) for v in patched), strict=True))
    return values, passes


def exact_cell_values(
    model: Any,
    tokenizer: Any,
    clean: str,
    corrupted: str,
    *,
    target: TargetLike,
    position: int,
    head_node: str,
    cells: list[Cell],
    batch_size: int = 64,
) -> tuple[dict[Cell, float], int]:
    """Exact patching of ``cells`` only (a head cell of a ``"k"``/``"v"`` map is the first
    query head of its group); returns the raw target values and the forward passes run."""
    from llmasos_widgets.models import as_explainable

    explainable = as_explainable(model, tokenizer)
    hf_model = explainable.hf_model
    clean_ids, corrupted_ids, _, _ = encode_pair(explainable, clean, corrupted)
    at = resolve_position(position, int(clean_ids.shape[1]))
    both = torch.cat([clean_ids, corrupted_ids])[:, : at + 1]
    kinds = {kind for kind, _, _ in cells}
    parts = anatomy(hf_model)
    with torch.no_grad(), eval_mode(hf_model):
        store = CleanStore(
            parts, residual="residual" in kinds, heads="head" in kinds, head_node=head_node
        )
        with borrowed_hooks() as hooks:
            store.record(hooks)
            logits = forward_logits(hf_model, both, keep=1)[:, 0]
        bound, _, _ = bind_pair_target(target, explainable.tokenizer, at, logits)
        values, passes = patched_values(hf_model, store, both[1:], bound, cells, batch_size)
    return values, passes + 1


def encode_pair(
    explainable: Any, clean: str, corrupted: str
) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """Both prompts' ids ``[1, T]`` and tokens; ValueError unless they have equal length."""
    clean_ids, corrupted_ids = explainable.encode(clean), explainable.encode(corrupted)
    clean_tokens = explainable.tokens(clean_ids)
    corrupted_tokens = explainable.tokens(corrupted_ids)
    if clean_ids.shape != corrupted_ids.shape:
        raise ValueError(
            f"clean and corrupted prompts must have the same number of tokens: clean has "
            f"{clean_ids.shape[1]} {clean_tokens}, corrupted has {corrupted_ids.shape[1]} "
            f"{corrupted_tokens}; change words one for one"
        )
    return clean_ids, corrupted_ids, clean_tokens, corrupted_tokens


def bind_pair_target(
    target: TargetLike, tokenizer: Any, position: int, logits: torch.Tensor
) -> tuple[Any, float, float]:
    """The target bound to ids (``None``: clean's prediction minus corrupted's prediction) and
    its values on the two rows of ``logits`` ``[clean, corrupted]``; ValueError when they are
    equal (no patch can move it)."""
    if target is None:
        clean_top, corrupted_top = (int(i) for i in logits.argmax(dim=-1))
        if clean_top == corrupted_top:
            name = tokenizer.convert_ids_to_tokens([clean_top])[0]
            raise ValueError(
                f"both prompts predict {name!r} after token {position}; pass target=(token, foil) "
                "to say which logit difference to patch"
            )
        target = (clean_top, corrupted_top)
    bound = resolve_target(target, tokenizer, position=position, logits_at_position=logits[0])
    clean_value, corrupted_value = (float(v) for v in bound(logits))
    if clean_value == corrupted_value:
        raise ValueError(
            f"the target {bound.description} is {clean_value:.4g} on both prompts: patching "
            "cannot move it; pick a target the prompts disagree on"
        )
    return bound, clean_value, corrupted_value


class CleanStore:
    """The clean run's residual sites and head outputs (or q/k/v projections), from row 0 of
    the first batch, the corrupted run's residual sites (row 1, to find no-op cells), and the
    patch hooks."""

    def __init__(
        self, parts: Anatomy, *, residual: bool, heads: bool, head_node: str = "output"
    ) -> None:
        self.parts = parts
        self.residual = residual
        self.heads = heads
        self.head_node = check_head_node(head_node)
        self.sites: dict[int, torch.Tensor] = {}  # site -> [2, token, hidden]
        # layer -> clean [token, head, dim] outputs, or the clean projection [token, width]
        self.head_inputs: dict[int, torch.Tensor] = {}

    def _step(self, layer: int) -> int:
        """Query heads per head cell: 1, or a key/value head's group for ``"k"``/``"v"``."""
        if self.head_node in ("output", "q"):
            return 1
        return self.parts.n_heads(layer) // self.parts.n_kv_heads(layer)

    def group(self, layer: int, head: int) -> slice:
        """The query heads the head cell of first head ``head`` stands for."""
        return slice(head, head + self._step(layer))

    def record(self, hooks: Any) -> None:
        if self.residual:
            for site in range(self.parts.n_sites):

                def keep_site(hidden: torch.Tensor, site: int = site) -> None:
                    self.sites[site] = hidden.detach().clone()

                self.parts.read_site(hooks, site, keep_site)
        if not self.heads:
            return
        for layer in range(self.parts.n_layers):

            def keep(outputs: torch.Tensor, layer: int = layer) -> None:
                self.head_inputs[layer] = outputs[0].detach().clone()

            if self.head_node == "output":
                self.parts.read_heads(hooks, layer, keep)
            else:
                projection = self.parts.attention_projection(layer, self.head_node)
                hooks.forward(projection, lambda _m, _a, output, keep=keep: keep(output))

    def _residual_cells(self, n_tokens: int) -> list[tuple[Cell, bool]]:
        """Every residual cell with whether patching it is a no-op (equal values)."""
        if not self.residual:
            return []
        return [
            (
                ("residual", site, pos),
                torch.equal(self.sites[site][0, pos], self.sites[site][1, pos]),
            )
            for site in range(self.parts.n_sites)
            for pos in range(n_tokens)
        ]

    def cells(self, n_tokens: int) -> list[Cell]:
        """Cells to run: residual cells that can change something, then every head (the
        first query head of each key/value group for ``"k"``/``"v"``)."""
        cells = [cell for cell, no_op in self._residual_cells(n_tokens) if not no_op]
        if self.heads:
            cells += [
                ("head", layer, head)
                for layer in range(self.parts.n_layers)
                for head in range(0, self.parts.n_heads(layer), self._step(layer))
            ]
        return cells

    def no_op_cells(self, n_tokens: int) -> list[Cell]:
        return [cell for cell, no_op in self._residual_cells(n_tokens) if no_op]

    def patch(self, hooks: Any, chunk: Any) -> None:
        """Hooks that give row ``r`` of the batch the clean value of ``chunk[r]`` only."""
        by_site: dict[int, tuple[list[int], list[int]]] = {}
        by_layer: dict[int, tuple[list[int], list[int]]] = {}
        for row, (kind, a, b) in enumerate(chunk):
            group = by_site if kind == "residual" else by_layer
            rows, index = group.setdefault(a, ([], []))
            rows.append(row)
            index.append(b)
        for site, (rows, positions) in by_site.items():
            clean = self.sites[site][0]
            self.parts.replace_site(hooks, site, _site_patch(clean, rows, positions))
        for layer, (rows, heads) in by_layer.items():
            clean = self.head_inputs[layer]
            if self.head_node == "output":
                self.parts.replace_heads(hooks, layer, _head_patch(clean, rows, heads))
                continue
            columns = [self.parts.head_columns(layer, head, self.head_node) for head in heads]
            projection = self.parts.attention_projection(layer, self.head_node)
            hooks.forward(projection, _columns_patch(clean, rows, columns))


def _columns_patch(clean: torch.Tensor, rows: list[int], columns: list[slice]) -> Any:
    """``output[rows[k], :, columns[k]] = clean[:, columns[k]]`` (a projection's output)."""

    def patch(_module: Any, _args: Any, output: torch.Tensor) -> torch.Tensor:
        out = output.clone()
        for row, cols in zip(rows, columns, strict=True):
            out[row, :, cols] = clean[:, cols].to(out.device)
        return out

    return patch


def _site_patch(clean: torch.Tensor, rows: list[int], positions: list[int]) -> Any:
    """``hidden[rows[k], positions[k]] = clean[positions[k]]``; other rows untouched."""

    def patch(hidden: torch.Tensor) -> torch.Tensor:
        out = hidden.clone()
        row_index = torch.tensor(rows, device=out.device)
        position_index = torch.tensor(positions, device=out.device)
        out[row_index, position_index] = clean.to(out.device)[position_index]
        return out

    return patch


def _head_patch(clean: torch.Tensor, rows: list[int], heads: list[int]) -> Any:
    """``outputs[rows[k], :, heads[k]] = clean[:, heads[k]]`` (every position)."""

    def patch(outputs: torch.Tensor) -> torch.Tensor:
        out = outputs.clone()
        row_index = torch.tensor(rows, device=out.device)
        head_index = torch.tensor(heads, device=out.device)
        # advanced indices split by a slice go first: [cell, token, dim]
        out[row_index, :, head_index] = clean.to(out.device)[:, head_index].transpose(0, 1)
        return out

    return patch
