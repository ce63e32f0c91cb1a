"""What an intervention measures: a token target at one position, or an accuracy over texts.

Token targets are those of :mod:`llmasos_widgets.targets` (``" are"`` = log p of a token,
``(" are", " is")`` = logit difference, ``None`` = the model's own prediction), bound to ids
on the run without intervention so the intervened run is scored on the *same* tokens.
:class:`CopyingAccuracy` scores whole sequences: top-1 accuracy on the second half of a
sequence written twice (its first token excluded: nothing predicts it), as the bundled
model's card measures copying.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CopyingAccuracy:
    """Top-1 accuracy on the repeat of ``prefix + words + words`` texts, first repeated token
    excluded. ``prefix_tokens`` is how many tokens come before the first copy (1: ``<bos>``)."""

    prefix_tokens: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.prefix_tokens, bool) or self.prefix_tokens < 0:
            raise ValueError(f"prefix_tokens must be >= 0, got {self.prefix_tokens!r}")

    @property
    def description(self) -> str:
        return "copying accuracy (top-1 on the repeat, its first token excluded)"

    def period(self, token_ids: torch.Tensor) -> int:
        """Length of the repeated half of ``token_ids`` (``[token]``); ValueError if none."""
        body = token_ids[self.prefix_tokens :]
        period = int(body.shape[0]) // 2
        if (
            period < 2
            or body.shape[0] != 2 * period
            or not torch.equal(body[:period], body[period:])
        ):
            raise ValueError(
                "copying accuracy needs texts that are a sequence of at least 2 tokens written "
                f"twice after {self.prefix_tokens} prefix token(s) (e.g. language.copy_examples); "
                f"got {int(token_ids.shape[0])} tokens that do not repeat"
            )
        return period

    def correct(self, token_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``[batch, scored]`` bool: top-1 right at each scored position. ``token_ids`` is
        ``[batch, token]``, ``logits`` ``[batch, token, vocab]`` (the whole sequence)."""
        period = self.period(token_ids[0])
        # logits at p predict token p + 1; the repeat's first token (p + 1 = prefix + period)
        # is not predictable, so score predictions of tokens prefix + period + 1 .. end
        first = self.prefix_tokens + period
        predicted = logits[:, first:-1].argmax(dim=-1)
        return predicted == token_ids[:, first + 1 :]
