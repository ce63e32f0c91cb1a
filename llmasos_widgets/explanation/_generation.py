"""``Generation``: what ``generate()`` adds to an :class:`Explanation` of prompt + completion."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from llmasos_widgets._readable_tokens import TokenStyle, show_tokens, token_label

if TYPE_CHECKING:
    from llmasos_widgets.attribution import SaliencyMatrix


def _array(name: str, value: Any, dtype: type, shape: tuple[int, ...]) -> None:
    if not isinstance(value, np.ndarray) or value.dtype != np.dtype(dtype):
        kind = getattr(value, "dtype", type(value).__name__)
        raise ValueError(f"{name} must be a {np.dtype(dtype)} numpy array, got {kind}")
    if value.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got {value.shape}")


@dataclass(frozen=True, kw_only=True, eq=False)
class Generation:
    """The generated part of an explanation: ``tokens[prompt_length:]`` were generated.

    Attributes:
        prompt_length: number of prompt tokens (``<bos>`` included).
        token_probabilities: float32 ``[token]``: the model's ``P(token | prefix)`` for every
            token of the sequence, read from the one forward over it (``-1.0`` for the first
            token, which has no prefix).
        step_probabilities: float32 ``[generated]``: each generated token's probability in
            the distribution it was chosen from at its step (``generate``'s scores, i.e. after
            temperature, top-k/top-p and other logits processors; under greedy decoding with
            no processors the model's own probability).
        alternative_ids: int64 ``[generated, k]``: the ``k`` most likely tokens of that
            distribution; ``alternative_probs`` float32 ``[generated, k]`` their probabilities,
            ``alternative_tokens`` their strings.
        settings: how the tokens were chosen (``do_sample``, ``seed``, ``temperature``, ...).
        saliency: target-side saliency of each generated token, or ``None``.
    """

    prompt_length: int
    token_probabilities: np.ndarray
    step_probabilities: np.ndarray
    alternative_ids: np.ndarray
    alternative_probs: np.ndarray
    alternative_tokens: tuple[tuple[str, ...], ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    saliency: SaliencyMatrix | None = None

    def check(self, n_tokens: int) -> None:
        """ValueError unless this generation fits a sequence of ``n_tokens`` tokens."""
        if isinstance(self.prompt_length, bool) or not 1 <= self.prompt_length < n_tokens:
            raise ValueError(
                f"prompt_length must be in 1..{n_tokens - 1} (at least one generated token), "
                f"got {self.prompt_length!r}"
            )
        n_generated = n_tokens - self.prompt_length
        _array("token_probabilities", self.token_probabilities, np.float32, (n_tokens,))
        _array("step_probabilities", self.step_probabilities, np.float32, (n_generated,))
        k = self.alternative_ids.shape[-1] if self.alternative_ids.ndim == 2 else -1
        _array("alternative_ids", self.alternative_ids, np.int64, (n_generated, k))
        _array("alternative_probs", self.alternative_probs, np.float32, (n_generated, k))
        if len(self.alternative_tokens) != n_generated or any(
            len(row) != k for row in self.alternative_tokens
        ):
            raise ValueError(f"alternative_tokens must be [{n_generated}][{k}] strings")
        if self.saliency is not None and self.saliency.scores.shape[::2] != (
            n_generated,
            n_tokens,
        ):
            raise ValueError(
                f"the saliency matrix must have {n_generated} rows over {n_tokens} tokens; got "
                f"scores of shape {self.saliency.scores.shape}"
            )

    @property
    def n_generated(self) -> int:
        return int(self.step_probabilities.shape[0])

    # -- persistence (explanation/_storage.py) ------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "token_probabilities": self.token_probabilities,
            "step_probabilities": self.step_probabilities,
            "alternative_ids": self.alternative_ids,
            "alternative_probs": self.alternative_probs,
        }
        if self.saliency is not None:
            arrays.update({f"saliency.{k}": v for k, v in self.saliency.to_arrays().items()})
        return arrays

    def metadata(self) -> dict[str, Any]:
        return {
            "prompt_length": self.prompt_length,
            "alternative_tokens": [list(row) for row in self.alternative_tokens],
            "settings": dict(self.settings),
            "saliency": None if self.saliency is None else self.saliency.metadata(),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Generation:
        saliency = None
        if meta["saliency"] is not None:
            from llmasos_widgets.attribution import SaliencyMatrix

            saliency = SaliencyMatrix.from_arrays(
                {
                    k.removeprefix("saliency."): v
                    for k, v in arrays.items()
                    if k.startswith("saliency.")
                },
                meta["saliency"],
            )
        return cls(
            prompt_length=int(meta["prompt_length"]),
            token_probabilities=np.array(arrays["token_probabilities"]),
            step_probabilities=np.array(arrays["step_probabilities"]),
            alternative_ids=np.array(arrays["alternative_ids"]),
            alternative_probs=np.array(arrays["alternative_probs"]),
            alternative_tokens=tuple(tuple(row) for row in meta["alternative_tokens"]),
            settings=dict(meta["settings"]),
            saliency=saliency,
        )

    # -- text -------------------------------------------------------------------------------
    def describe(self, tokens: tuple[str, ...], style: TokenStyle) -> list[str]:
        """Lines for ``print(explanation)``: the completion and each generated token's
        probability and top alternative."""
        shown = show_tokens(tokens, style)
        joiner = " " if style.scheme == "plain" else ""
        completion = joiner.join(token.text for token in shown[self.prompt_length :])
        if len(completion) > 60:
            completion = completion[:57] + "..."
        how = "sampled" if self.settings.get("do_sample") else "greedy"
        lines = [
            f"  completion ({self.n_generated} tokens after {self.prompt_length}, {how}): "
            f"{completion!r}"
        ]
        steps = []
        for index in range(min(self.n_generated, 8)):
            label = token_label(shown[self.prompt_length + index])
            alternatives = [
                (token, p)
                for token, p in zip(
                    self.alternative_tokens[index], self.alternative_probs[index], strict=True
                )
                if token != tokens[self.prompt_length + index]
            ]
            other = ""
            if alternatives:
                token, p = alternatives[0]
                other = f" (vs {token_label(show_tokens([token], style)[0])} {p:.2f})"
            steps.append(f"{label} {self.step_probabilities[index]:.2f}{other}")
        more = ", ..." if self.n_generated > 8 else ""
        lines.append(f"  generated: {', '.join(steps)}{more}")
        if self.saliency is not None:
            lines.append(
                f"  saliency matrix: {self.n_generated} generated x {len(tokens)} tokens "
                f"({self.saliency.method}, log p of each generated token)"
            )
        return lines
