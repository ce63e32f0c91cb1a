"""``Comparison``: two models' explanations of the same text, lined up head by head and site by
site, with what differs between them.

Everything is indexed the same way in both models (same tokenizer, same ``[layer, head]``
shape), so a difference is a plain subtraction: ``b - a``. Attention patterns are compared
lazily from the stored queries and keys, like ``Explanation.attention``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmasos_widgets.tracing import site_label

if TYPE_CHECKING:
    from llmasos_widgets.attribution import Saliency
    from llmasos_widgets.explanation import Explanation

FORMAT = "llmasos-comparison"
FORMAT_VERSION = "1"
ATTENTION = "attention"
"""The ``changed_heads`` measure that compares whole patterns
(:meth:`Comparison.attention_distance`)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class Comparison:
    """What model A and model B did on one text. Build with :func:`compare`.

    Attributes:
        a, b: each model's :class:`~llmasos_widgets.explanation.Explanation` (same tokens;
            saliency, when computed, of the same target in both).
        lens_distance: float32 ``[site, token]``: total-variation distance (0..1) between A's
            and B's logit-lens next-token distributions read at residual site ``site``
            (0 = ``emb``, ``i`` = ``after L{i-1}``) of position ``token``.
        lens_target_a, lens_target_b: float32 ``[site, token]``: the logit-lens probability
            of :attr:`target_token` in A and in B.
        target_token_id: the token the lens probabilities (and saliency) are about.
        target_token: its string.
    """

    a: Explanation
    b: Explanation
    lens_distance: np.ndarray
    lens_target_a: np.ndarray
    lens_target_b: np.ndarray
    target_token_id: int
    target_token: str

    def __post_init__(self) -> None:
        check_same_shape(self.a, self.b)
        shape = (self.a.n_layers + 1, self.a.n_tokens)
        for name in ("lens_distance", "lens_target_a", "lens_target_b"):
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.dtype != np.float32:
                raise ValueError(f"{name} must be a float32 numpy array")
            if array.shape != shape:
                raise ValueError(
                    f"{name} must have shape [site, token] = {shape}, got {array.shape}"
                )

    # ---- shape facts -------------------------------------------------------------------
    @property
    def tokens(self) -> tuple[str, ...]:
        return self.a.tokens

    @property
    def n_layers(self) -> int:
        return self.a.n_layers

    @property
    def n_heads(self) -> int:
        return self.a.n_heads

    @property
    def n_tokens(self) -> int:
        return self.a.n_tokens

    # ---- heads -------------------------------------------------------------------------
    @property
    def summary_names(self) -> tuple[str, ...]:
        """Head summaries both explanations have, plus ``"attention"``."""
        names = [n for n in self.a.head_summaries if n in self.b.head_summaries]
        return (*names, ATTENTION)

    def head_difference(self, summary: str) -> np.ndarray:
        """float32 ``[layer, head]``: B's ``summary`` minus A's; for ``"attention"`` the
        (unsigned) :meth:`attention_distance`."""
        if summary == ATTENTION:
            return self.attention_distance()
        if summary not in self.a.head_summaries or summary not in self.b.head_summaries:
            raise ValueError(
                f"unknown summary {summary!r}; available: {', '.join(self.summary_names)}"
            )
        return (self.b.head_summaries[summary] - self.a.head_summaries[summary]).astype(np.float32)

    @property
    def head_differences(self) -> Mapping[str, np.ndarray]:
        """Every :meth:`head_difference`, by summary name."""
        return {name: self.head_difference(name) for name in self.summary_names}

    def attention_distance(self, query: int | None = None) -> np.ndarray:
        """float32 ``[layer, head]``: how far each head's pattern moved, as the total-variation
        distance (0..1) between A's and B's attention rows, averaged over query rows 1..T-1
        (row 0 can only attend to itself), or of one ``query`` row (negative from the end)."""
        rows = self._query_rows(query)
        out = np.zeros((self.n_layers, self.n_heads), np.float32)
        if len(rows) == 0:
            return out
        for layer in range(self.n_layers):
            pa = self.a.layer_attention(layer).cpu().double().numpy()[:, rows]
            pb = self.b.layer_attention(layer).cpu().double().numpy()[:, rows]
            out[layer] = 0.5 * np.abs(pb - pa).sum(-1).mean(-1)
        return out

    def _query_rows(self, query: int | None) -> np.ndarray:
        if query is None:
            return np.arange(1, self.n_tokens)
        if isinstance(query, bool) or not -self.n_tokens <= query < self.n_tokens:
            raise ValueError(
                f"query {query!r} is out of range: the text has tokens 0..{self.n_tokens - 1}"
            )
        return np.array([query % self.n_tokens])

    def changed_heads(
        self, summary: str = ATTENTION, k: int = 5, *, query: int | None = None
    ) -> list[tuple[int, int, float]]:
        """The ``k`` heads that moved most by ``summary``, as ``(layer, head, change)``, largest
        ``|change|`` first (ties in ``[layer, head]`` order). ``summary="attention"`` (default)
        ranks by :meth:`attention_distance` (``query`` restricts it to one query row); a head
        summary (``"entropy"``, ``"induction"``, ...) by B minus A."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if summary == ATTENTION:
            change = self.attention_distance(query)
        elif query is not None:
            raise ValueError(f"query= applies to summary='attention' only, not {summary!r}")
        else:
            change = self.head_difference(summary)
        order = np.argsort(-np.abs(change), axis=None, kind="stable")[:k]
        return [
            (int(i // self.n_heads), int(i % self.n_heads), float(change.flat[i])) for i in order
        ]

    # ---- logit lens ----------------------------------------------------------------------
    @property
    def lens_target_difference(self) -> np.ndarray:
        """float32 ``[site, token]``: B's logit-lens probability of the target minus A's."""
        return self.lens_target_b - self.lens_target_a

    def changed_sites(
        self, k: int = 5, *, token: int | None = None
    ) -> list[tuple[int, int, float]]:
        """The ``k`` (site, token) cells whose logit-lens prediction moved most, as
        ``(site, token, distance)`` by :attr:`lens_distance`, largest first; ``token``
        restricts the ranking to one position (negative from the end)."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        distance = self.lens_distance
        columns = np.arange(self.n_tokens) if token is None else self._query_rows(token)
        view = distance[:, columns]
        order = np.argsort(-view, axis=None, kind="stable")[:k]
        width = len(columns)
        return [(int(i // width), int(columns[i % width]), float(view.flat[i])) for i in order]

    # ---- saliency ------------------------------------------------------------------------
    @property
    def saliency_a(self) -> Saliency | None:
        return self.a.saliency

    @property
    def saliency_b(self) -> Saliency | None:
        return self.b.saliency

    @property
    def saliency_difference(self) -> np.ndarray | None:
        """float32 ``[site, token]``: B's saliency scores minus A's (same target and method),
        ``None`` when saliency was not computed."""
        if self.a.saliency is None or self.b.saliency is None:
            return None
        return (self.b.saliency.scores - self.a.saliency.scores).astype(np.float32)

    # ---- persistence and display ---------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write a folder: ``a.llmx`` and ``b.llmx`` (the explanations) and ``comparison.json``
        plus ``lens.npz`` (the lens arrays); returns the folder."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.a.save(folder / "a.llmx")
        self.b.save(folder / "b.llmx")
        np.savez(
            folder / "lens.npz",
            lens_distance=self.lens_distance,
            lens_target_a=self.lens_target_a,
            lens_target_b=self.lens_target_b,
        )
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "target_token_id": self.target_token_id,
            "target_token": self.target_token,
        }
        (folder / "comparison.json").write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu") -> Comparison:
        """Read a folder written by :meth:`save`."""
        from llmasos_widgets.explanation import Explanation

        folder = Path(path)
        meta_path = folder / "comparison.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder} is not a saved comparison: no comparison.json in it")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path} is not a {FORMAT} file (format {meta.get('format')!r})")
        with np.load(folder / "lens.npz") as lens:
            arrays = {name: lens[name] for name in lens.files}
        return cls(
            a=Explanation.load(folder / "a.llmx", device=device),
            b=Explanation.load(folder / "b.llmx", device=device),
            target_token_id=int(meta["target_token_id"]),
            target_token=str(meta["target_token"]),
            **arrays,
        )

    def to_html(self, path: str | Path) -> Path:
        """A standalone HTML page of the comparison (the ``"html"`` view of ``export``)."""
        from llmasos_widgets._views import render

        result: Path = render("html", self, Path(path))
        return result

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Shown as a :class:`~llmasos_widgets.widgets.CompareWidget` in a notebook."""
        from llmasos_widgets._views import render

        return render("mimebundle", self, **kwargs)

    def __repr__(self) -> str:
        return (
            f"Comparison({self.a.model_name!r} vs {self.b.model_name!r}, tokens={self.n_tokens}, "
            f"layers={self.n_layers}, heads={self.n_heads}, target={self.target_token!r})"
        )

    def __str__(self) -> str:
        """The heads and sites that moved most, a few lines."""
        lines = [repr(self)]
        heads = ", ".join(f"L{layer}.H{h} {d:.2f}" for layer, h, d in self.changed_heads(k=3))
        lines.append(f"  heads whose attention moved most: {heads}")
        sites = ", ".join(f"{site_label(s)} @{t} {d:.2f}" for s, t, d in self.changed_sites(k=3))
        lines.append(f"  logit-lens cells that moved most (site @token): {sites}")
        return "\n".join(lines)


def check_same_shape(a: Explanation, b: Explanation) -> None:
    """Raise ``ValueError`` naming the difference unless A and B line up token by token and
    head by head."""
    if (a.n_layers, a.n_heads) != (b.n_layers, b.n_heads):
        raise ValueError(
            f"model A has {a.n_layers} layers x {a.n_heads} heads but model B has "
            f"{b.n_layers} x {b.n_heads}; a comparison lines heads up by [layer, head], so "
            "compare a model with a fine-tuned copy of itself (same architecture)"
        )
    if list(a.token_ids) != list(b.token_ids):
        raise ValueError(token_mismatch(list(a.token_ids), list(b.token_ids), a.tokens, b.tokens))


def token_mismatch(ids_a: list[int], ids_b: list[int], tokens_a: Any, tokens_b: Any) -> str:
    """Why two tokenizations of one text differ, naming the first differing token."""
    for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)):
        if x != y:
            return (
                f"the two models tokenize the text differently: token {i} is "
                f"{tokens_a[i]!r} (id {x}) for model A but {tokens_b[i]!r} (id {y}) for model B; "
                "compare() needs both models to use the same tokenizer"
            )
    return (
        f"the two models tokenize the text differently: {len(ids_a)} tokens for model A, "
        f"{len(ids_b)} for model B; compare() needs both models to use the same tokenizer"
    )
