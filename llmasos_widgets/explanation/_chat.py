"""Chat models: ``explain(model, messages=[...])`` and ``generate(model, messages=[...])``.

The token ids are exactly ``tokenizer.apply_chat_template(messages)``'s (``generate`` adds the
generation prompt, so the model writes the assistant turn): the templated text is never
encoded again, so a template that writes its own BOS string gets exactly one BOS.

Each message's token range ``[start, end)`` (a :class:`MessageSpan`) covers its whole turn:
the role header the template writes before it (``<|im_start|>user\\n``), its content and the
end-of-turn tokens after it (``<|im_end|>\\n``). Message ``i`` ends where the template's
rendering of ``messages[:i + 1]`` ends and message ``i + 1`` starts there. What the template
writes before the first message's header (a BOS, a default system prompt) belongs to no
message; the first header is found as the last special token before the first message's role
name. For ``generate`` the completion, with the assistant header of the generation prompt, is
one more span with ``generated=True``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from llmasos_widgets.attribution import Saliency
    from llmasos_widgets.models import ExplainableModel

OUTSIDE = "template"
"""Key of :func:`saliency_by_message` for tokens of no message (what the template writes
before the first message's header)."""


@dataclass(frozen=True)
class MessageSpan:
    """One message of a conversation: its ``role`` and token range ``[start, end)`` (role
    header and end-of-turn tokens included); ``generated`` marks the turn ``generate`` wrote."""

    role: str
    start: int
    end: int
    generated: bool = False

    @property
    def label(self) -> str:
        return f"{self.role} (generated)" if self.generated else self.role

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "start": self.start,
            "end": self.end,
            "generated": self.generated,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> MessageSpan:
        return cls(
            role=str(value["role"]),
            start=int(value["start"]),
            end=int(value["end"]),
            generated=bool(value.get("generated", False)),
        )


def check_spans(spans: Sequence[MessageSpan], n_tokens: int) -> None:
    """ValueError unless ``spans`` are in order, disjoint and inside ``[0, n_tokens]``."""
    previous = 0
    for index, span in enumerate(spans):
        if not isinstance(span, MessageSpan):
            raise ValueError(f"messages[{index}] must be a MessageSpan, got {type(span).__name__}")
        if not previous <= span.start <= span.end <= n_tokens:
            raise ValueError(
                f"message {index} ({span.role}) spans tokens [{span.start}, {span.end}): spans "
                f"must be in order, disjoint and within the {n_tokens} tokens"
            )
        previous = span.end


def check_messages(messages: Any) -> list[dict[str, str]]:
    """The messages as plain dicts, or a TypeError/ValueError saying what is wrong."""
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise TypeError(
            'messages must be a list of {"role": ..., "content": ...} dicts, got '
            f"{type(messages).__name__}"
        )
    if len(messages) == 0:
        raise ValueError("messages is empty; pass at least one {'role': ..., 'content': ...}")
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(
                f"messages[{index}] must be a dict with 'role' and 'content', got "
                f"{type(message).__name__}"
            )
        for key in ("role", "content"):
            if key not in message:
                raise ValueError(f"messages[{index}] has no {key!r} (keys: {sorted(message)})")
        role, content = message["role"], message["content"]
        if not isinstance(role, str) or not role.strip():
            raise ValueError(f"messages[{index}]['role'] must be a non-empty str, got {role!r}")
        if not isinstance(content, str):
            raise TypeError(
                f"messages[{index}]['content'] must be a str, got {type(content).__name__} "
                "(text only: no images or content parts)"
            )
        checked.append({**message, "role": role, "content": content})
    return checked


def chat_input(
    explainable: ExplainableModel,
    text: Any,
    messages: Any,
    *,
    add_generation_prompt: bool,
    truncate: bool = False,
) -> tuple[Any, tuple[MessageSpan, ...]]:
    """``(text, ())`` when no ``messages`` were given, else ``(ids [1, token], spans)``."""
    if messages is None:
        if text is None:
            raise TypeError("pass the text to explain, or a conversation as messages=[...]")
        return text, ()
    if text is not None:
        raise TypeError(
            "pass text or messages=, not both: messages are turned into tokens by the "
            "tokenizer's chat template"
        )
    tokenizer = explainable.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"{explainable.name}'s tokenizer has no chat template, so it is not a chat model: "
            "pass text=... instead, load an -instruct/-chat checkpoint, or set "
            "tokenizer.chat_template"
        )
    checked = check_messages(messages)
    ids, spans = chat_ids(tokenizer, checked, add_generation_prompt=add_generation_prompt)
    if len(ids) > explainable.max_length:
        if not truncate:
            raise ValueError(
                f"the conversation is {len(ids)} tokens long but {explainable.name} takes at "
                f"most {explainable.max_length}; shorten it or pass truncate=True to keep the "
                f"first {explainable.max_length} tokens"
            )
        ids = ids[: explainable.max_length]
        limit = len(ids)
        spans = tuple(
            MessageSpan(s.role, s.start, min(s.end, limit)) for s in spans if s.start < limit
        )
    tensor = torch.tensor([ids], dtype=torch.long, device=explainable.device)
    return tensor, spans


def _template(tokenizer: Any, messages: list[dict[str, str]], **kwargs: Any) -> Any:
    try:
        return tokenizer.apply_chat_template(messages, **kwargs)
    except Exception as error:  # jinja's TemplateError, raise_exception(...) of the template
        raise ValueError(
            f"the tokenizer's chat template refused these messages: {error}"
        ) from error


def chat_ids(
    tokenizer: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool
) -> tuple[list[int], tuple[MessageSpan, ...]]:
    """``apply_chat_template``'s token ids and each message's :class:`MessageSpan`."""
    encoded = _template(
        tokenizer,
        messages,
        tokenize=True,
        return_dict=True,
        add_generation_prompt=add_generation_prompt,
    )
    ids = [int(i) for i in encoded["input_ids"]]
    if not ids:
        raise ValueError("the chat template turned these messages into no tokens")
    rendered = _template(
        tokenizer, messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    bounds = _char_bounds(tokenizer, messages, rendered, add_generation_prompt)
    token_at = _token_boundary(tokenizer, rendered, ids)
    spans = tuple(
        MessageSpan(message["role"], token_at(start), token_at(end))
        for message, (start, end) in zip(messages, bounds, strict=True)
    )
    return ids, spans


def _char_bounds(
    tokenizer: Any, messages: list[dict[str, str]], rendered: str, add_generation_prompt: bool
) -> list[tuple[int, int]]:
    """Each message's ``[start, end)`` in the rendered text (see the module docstring)."""
    contents: list[tuple[int, int] | None] = []
    cursor = 0
    for message in messages:
        content = message["content"]
        found = None
        for candidate in (content, content.strip()):
            where = rendered.find(candidate, cursor) if candidate else -1
            if where >= 0:
                found = (where, where + len(candidate))
                cursor = found[1]
                break
        contents.append(found)

    ends: list[int] = []
    for index in range(len(messages)):
        if index == len(messages) - 1 and not add_generation_prompt:
            end = len(rendered)
        else:
            end = -1
            try:
                prefix = _template(tokenizer, messages[: index + 1], tokenize=False)
            except ValueError:  # a template that refuses a partial conversation
                prefix = None
            if isinstance(prefix, str) and rendered.startswith(prefix):
                end = len(prefix)
            located = contents[index]
            if end < 0 or (located is not None and end < located[1]):
                end = located[1] if located is not None else (ends[-1] if ends else 0)
        ends.append(max(end, ends[-1] if ends else 0))

    starts = [_first_header(tokenizer, messages[0]["role"], rendered, contents[0], ends[0])]
    starts.extend(ends[:-1])
    return [(start, max(start, end)) for start, end in zip(starts, ends, strict=True)]


def _first_header(
    tokenizer: Any, role: str, rendered: str, content: tuple[int, int] | None, end: int
) -> int:
    """Where the first message's role header starts: the last special token before its role
    name (``<|im_start|>`` of ``<|im_start|>user``); else after a leading BOS string."""
    bos = getattr(tokenizer, "bos_token", None)
    base = len(bos) if isinstance(bos, str) and bos and rendered.startswith(bos) else 0
    before = content[0] if content is not None else end
    named = rendered.rfind(role, 0, before)
    if named < 0:
        return min(base, end)
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    specials.update(str(token) for token in decoder.values() if getattr(token, "special", False))
    header = max((rendered.rfind(s, 0, named) for s in specials if s), default=-1)
    return header if header >= 0 else min(base, end)


def _token_boundary(tokenizer: Any, rendered: str, ids: list[int]) -> Callable[[int], int]:
    """Character offset in ``rendered`` -> index of the first token starting at or after it."""
    try:
        encoded = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
        same = list(encoded["input_ids"]) == ids
    except (NotImplementedError, ValueError, KeyError, TypeError):
        offsets, same = None, False
    if offsets is not None and same:
        token_starts = [int(start) for start, _ in offsets]
        return lambda char: bisect.bisect_left(token_starts, char)

    def by_prefix(char: int) -> int:  # slow tokenizers: encode the text up to the boundary
        prefix = tokenizer(rendered[:char], add_special_tokens=False)["input_ids"]
        return min(len(prefix), len(ids))

    return by_prefix


def generated_span(spans: Sequence[MessageSpan], n_tokens: int) -> tuple[MessageSpan, ...]:
    """``spans`` plus the assistant turn ``generate`` wrote: from the end of the last message
    (the generation prompt's header) to the last token."""
    start = spans[-1].end if spans else 0
    return (*spans, MessageSpan("assistant", start, n_tokens, generated=True))


def saliency_by_message(
    saliency: Saliency, spans: Sequence[MessageSpan], *, absolute: bool = False
) -> dict[str, np.ndarray]:
    """Saliency summed over each message's tokens, per site: ``"{index} {label}"`` ->
    float64 ``[site]`` (``saliency.sites`` order), plus :data:`OUTSIDE` for tokens of no
    message when there are any. Signed sums (``absolute=True``: sums of ``|score|``) add up to
    the map's total over all tokens."""
    if not spans:
        raise ValueError(
            "this explanation has no messages: saliency by message needs explain(model, "
            "messages=[...]) or generate(model, messages=[...])"
        )
    scores = np.asarray(saliency.scores, dtype=np.float64)
    if absolute:
        scores = np.abs(scores)
    n = scores.shape[1]
    inside = np.zeros(n, dtype=bool)
    sums: dict[str, np.ndarray] = {}
    for index, span in enumerate(spans):
        start, end = min(span.start, n), min(span.end, n)
        sums[f"{index} {span.label}"] = scores[:, start:end].sum(axis=1)
        inside[start:end] = True
    if not inside.all():
        sums[OUTSIDE] = scores[:, ~inside].sum(axis=1)
    return sums
