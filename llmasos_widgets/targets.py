"""Token targets: a scalar read off the next-token logits at one position -- what an
attribution explains and what an intervention measures (both import it from here).

Three kinds of target, each a small frozen dataclass:

* :class:`NextToken` -- the log-probability (default) or logit of a given next token;
* :class:`Predicted` -- the same for the token the model itself ranks first;
* :class:`Contrast` -- ``logit(token) - logit(foil)``, e.g. ``Contrast(" are", " is")``.
  It equals the log-probability difference (the softmax normaliser cancels), so it asks
  "why this token rather than that one" without the rest of the vocabulary.

A target given as a string must be exactly one token of the model's vocabulary; anything else
raises a ``ValueError`` naming the pieces, since silently using the first piece would explain
a different question than the one asked.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import torch

ScoreKind = Literal["logprob", "logit"]
_SCORE_KINDS = ("logprob", "logit")


def _check_score(score: str) -> None:
    if score not in _SCORE_KINDS:
        close = difflib.get_close_matches(score, _SCORE_KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown score {score!r}{hint} valid scores: {', '.join(_SCORE_KINDS)}")


@dataclass(frozen=True)
class NextToken:
    """``log p(token)`` (or its logit with ``score="logit"``) at the target position."""

    token: str | int
    score: ScoreKind = "logprob"

    def __post_init__(self) -> None:
        _check_score(self.score)


@dataclass(frozen=True)
class Predicted:
    """The score of the model's own top-1 prediction at the target position."""

    score: ScoreKind = "logprob"

    def __post_init__(self) -> None:
        _check_score(self.score)


@dataclass(frozen=True)
class Contrast:
    """``logit(token) - logit(foil)``: positive where the model prefers ``token``."""

    token: str | int
    foil: str | int


Target: TypeAlias = NextToken | Predicted | Contrast
TargetLike: TypeAlias = Target | str | int | tuple[str | int, str | int] | None


def as_target(spec: TargetLike) -> Target:
    """Normalise the short forms: ``None`` → :class:`Predicted`, ``" are"``/``7`` →
    :class:`NextToken`, ``(" are", " is")`` → :class:`Contrast`."""
    if spec is None:
        return Predicted()
    if isinstance(spec, NextToken | Predicted | Contrast):
        return spec
    if isinstance(spec, str | int) and not isinstance(spec, bool):
        return NextToken(spec)
    if isinstance(spec, tuple) and len(spec) == 2:
        return Contrast(spec[0], spec[1])
    raise TypeError(
        f"target must be None, a token (str or id), a (token, foil) pair, or one of "
        f"NextToken/Predicted/Contrast; got {spec!r}"
    )


def resolve_token(tokenizer: Any, token: str | int, vocab_size: int) -> int:
    """The id of ``token``; raises ``ValueError`` unless it is exactly one in-vocabulary token."""
    if isinstance(token, int) and not isinstance(token, bool):
        if not 0 <= token < vocab_size:
            raise ValueError(f"token id {token} is out of range: the vocabulary has {vocab_size}")
        return token
    if not isinstance(token, str) or not token.strip():
        raise ValueError(f"a target token must be a non-empty string or an int id, got {token!r}")
    ids = tokenizer.encode(token, add_special_tokens=False)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    if len(ids) != 1:
        raise ValueError(
            f"target {token!r} is {len(ids)} tokens {pieces}, not one; pass a single token "
            f"(one of the pieces) or its id"
        )
    unk_id = getattr(tokenizer, "unk_token_id", None)
    unk = getattr(tokenizer, "unk_token", None)
    if unk_id is not None and ids[0] == unk_id and token.strip() != unk:
        vocab = list(tokenizer.get_vocab())
        close = difflib.get_close_matches(token.strip(), vocab, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"target {token!r} is not in the vocabulary (it maps to {unk!r}){hint}")
    if not 0 <= ids[0] < vocab_size:
        raise ValueError(f"target {token!r} has id {ids[0]} beyond the model's {vocab_size} logits")
    return int(ids[0])


@dataclass(frozen=True)
class ResolvedTarget:
    """A target bound to token ids and a position; called on logits ``[batch, vocab]``."""

    kind: Literal["next_token", "predicted", "contrast"]
    score: ScoreKind
    position: int
    token_id: int
    token: str
    foil_id: int | None = None
    foil: str | None = None

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """``[batch, vocab]`` logits at :attr:`position` → ``[batch]`` target values (float32)."""
        logits = logits.float()
        if self.foil_id is not None:
            return logits[:, self.token_id] - logits[:, self.foil_id]
        if self.score == "logit":
            return logits[:, self.token_id]
        return torch.log_softmax(logits, dim=-1)[:, self.token_id]

    @property
    def description(self) -> str:
        """Human-readable, e.g. ``logit('are') - logit('is') after token 5``."""
        where = f"after token {self.position}"
        if self.foil is not None:
            return f"logit({self.token!r}) - logit({self.foil!r}) {where}"
        name = "log p" if self.score == "logprob" else "logit"
        own = " (predicted)" if self.kind == "predicted" else ""
        return f"{name}({self.token!r}){own} {where}"


def resolve_target(
    spec: TargetLike,
    tokenizer: Any,
    *,
    position: int,
    logits_at_position: torch.Tensor,
) -> ResolvedTarget:
    """Bind ``spec`` to ids; ``logits_at_position`` (``[vocab]``) supplies the prediction."""
    target = as_target(spec)
    vocab_size = int(logits_at_position.shape[-1])

    def name(token_id: int) -> str:
        return str(tokenizer.convert_ids_to_tokens([token_id])[0])

    if isinstance(target, Predicted):
        top = int(torch.argmax(logits_at_position))
        return ResolvedTarget("predicted", target.score, position, top, name(top))
    if isinstance(target, NextToken):
        token_id = resolve_token(tokenizer, target.token, vocab_size)
        return ResolvedTarget("next_token", target.score, position, token_id, name(token_id))
    token_id = resolve_token(tokenizer, target.token, vocab_size)
    foil_id = resolve_token(tokenizer, target.foil, vocab_size)
    if token_id == foil_id:
        raise ValueError(f"contrast needs two different tokens; both are {name(token_id)!r}")
    return ResolvedTarget(
        "contrast", "logit", position, token_id, name(token_id), foil_id, name(foil_id)
    )


class TargetFromOwnPass:
    """A target resolved from the logits of the first pass that scores it: a gradient method's
    own forward (with grad) gives the model's prediction, so no separate no-grad forward runs
    first. Called like :class:`ResolvedTarget`; after the call, :attr:`resolved` and
    :attr:`logits` (``[vocab]``, detached) are those of the first call."""

    def __init__(self, spec: TargetLike, tokenizer: Any, *, position: int) -> None:
        self.spec, self.tokenizer, self.position = spec, tokenizer, position
        self.resolved: ResolvedTarget | None = None
        self.logits: torch.Tensor | None = None

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.resolved is None:
            self.logits = logits[0].detach()
            self.resolved = resolve_target(
                self.spec, self.tokenizer, position=self.position, logits_at_position=self.logits
            )
        return self.resolved(logits)


def resolve_position(position: int, n_tokens: int) -> int:
    """A non-negative index into ``n_tokens`` (negative counts from the end), or ValueError."""
    if isinstance(position, bool) or not isinstance(position, int):
        raise TypeError(f"position must be an int, got {type(position).__name__}")
    if not -n_tokens <= position < n_tokens:
        raise ValueError(
            f"position {position} is out of range for {n_tokens} tokens "
            f"(valid: {-n_tokens}..{n_tokens - 1})"
        )
    return position % n_tokens
