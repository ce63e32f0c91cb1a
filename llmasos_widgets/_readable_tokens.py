"""Token strings as a reader reads them, for every view (widgets and the HTML report).

Tokenizers write their tokens in private alphabets: SentencePiece (LLaMA-2, Mistral) marks a
word start with ``▁`` and spells bytes it has no piece for as ``<0xE8>``; byte-level BPE
(LLaMA-3, Qwen2, GPT-2) maps every byte to a printable character (``Ġ`` is a space, ``Ċ`` a
newline) and may split one Chinese character over several tokens. :func:`show_tokens` turns a
sequence of raw token strings back into text, one :class:`ShownToken` per token:

* ``text`` is the token's decoded text with real whitespace (views draw it as quiet marks:
  ``␣`` space, ``⏎`` newline, ``⇥`` tab);
* a character whose UTF-8 bytes span several tokens is shown **on the token holding its first
  byte**; each following token that holds only the rest of it has ``text == ""`` and kind
  ``"continuation"`` (views draw a quiet ``◌``), with ``span`` = the index of the token that
  shows the character. So the texts of a sequence concatenate to the decoded text, and every
  token keeps its own cell (attention and saliency are per token);
* bytes that form no character (a prediction that is half a character, a truncated text) are
  shown as ``<0xE8>`` with kind ``"bytes"``;
* special tokens (``<s>``, ``<|begin_of_text|>``, pad, unk, added special tokens) keep their
  string and have kind ``"special"``.

Word-level and unrecognised tokenizers are shown as their raw strings (scheme ``"plain"``).
The raw strings stay the data (``Explanation.tokens``); this module only renders them.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

SCHEMES: tuple[str, ...] = ("sentencepiece", "byte_level", "plain")
SENTENCEPIECE_SPACE = "\u2581"  # ▁
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@dataclass(frozen=True, kw_only=True)
class TokenStyle:
    """How one tokenizer writes its token strings: enough to show them without the tokenizer
    (an Explanation loaded from a file carries its style). Build with :meth:`of`."""

    scheme: str = "plain"
    """``"sentencepiece"``, ``"byte_level"`` or ``"plain"`` (raw strings shown as they are)."""
    special: frozenset[str] = frozenset()
    """Special token strings (bos, eos, pad, unk and added special tokens)."""
    literal: frozenset[str] = frozenset()
    """Added non-special tokens: stored as their own text, never byte-mapped."""

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown token scheme {self.scheme!r}; valid: {', '.join(SCHEMES)}")
        object.__setattr__(self, "special", frozenset(str(s) for s in self.special))
        object.__setattr__(self, "literal", frozenset(str(s) for s in self.literal))

    @classmethod
    def of(cls, tokenizer: Any) -> TokenStyle:
        """The style of a ``transformers`` tokenizer, detected from its backend."""
        special = {str(t) for t in getattr(tokenizer, "all_special_tokens", ()) or ()}
        literal: set[str] = set()
        try:
            added = dict(tokenizer.added_tokens_decoder)
        except (AttributeError, NotImplementedError, TypeError):
            added = {}
        for token in added.values():
            content = str(getattr(token, "content", token))
            (special if getattr(token, "special", False) else literal).add(content)
        return cls(
            scheme=detect_scheme(tokenizer),
            special=frozenset(special),
            literal=frozenset(literal - special),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable form (sorted lists), read back by :meth:`from_json`."""
        return {
            "scheme": self.scheme,
            "special": sorted(self.special),
            "literal": sorted(self.literal),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> TokenStyle:
        """Inverse of :meth:`to_json`; ``None`` (a file written before styles) is plain."""
        if data is None:
            return cls()
        return cls(
            scheme=str(data["scheme"]),
            special=frozenset(data.get("special", ())),
            literal=frozenset(data.get("literal", ())),
        )


@dataclass(frozen=True)
class ShownToken:
    """One token as a reader sees it (see the module docstring for the rules)."""

    text: str
    kind: str
    span: int
    """Index of the token that shows this token's character: itself, or for a continuation
    the earlier token holding the character's first byte."""


def detect_scheme(tokenizer: Any) -> str:
    """``"byte_level"``, ``"sentencepiece"`` or ``"plain"`` from the tokenizer's backend.

    A ``tokenizers`` backend is read from its decoder, pre-tokenizer and normaliser (a
    ``ByteLevel`` component means byte-level BPE; ``Metaspace``/``ByteFallback``, a BPE with
    ``byte_fallback`` or a normaliser writing ``▁`` means SentencePiece). Slow tokenizers:
    ``sp_model`` is SentencePiece, ``byte_encoder`` byte-level. Anything else is plain.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        parts = " ".join(
            _component_json(getattr(backend, name, None))
            for name in ("decoder", "pre_tokenizer", "normalizer")
        )
        if '"ByteLevel"' in parts:
            return "byte_level"
        model = getattr(backend, "model", None)
        if (
            getattr(model, "byte_fallback", False)
            or '"Metaspace"' in parts
            or '"ByteFallback"' in parts
            or SENTENCEPIECE_SPACE in parts
        ):
            return "sentencepiece"
        return "plain"
    if getattr(tokenizer, "sp_model", None) is not None:
        return "sentencepiece"
    if getattr(tokenizer, "byte_encoder", None) is not None:
        return "byte_level"
    return "plain"


def _component_json(component: Any) -> str:
    """A ``tokenizers`` component's own JSON (small: decoders, pre-tokenizers, normalisers)."""
    if component is None:
        return ""
    try:
        state = component.__getstate__()
    except (AttributeError, TypeError, ValueError):
        return ""
    text = state.decode("utf-8", "replace") if isinstance(state, bytes) else str(state)
    try:  # \u2581 escapes become the character, so the "▁" check sees it
        return json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return text


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """GPT-2's ``bytes_to_unicode`` inverted: printable character -> the byte it stands for."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    shifted = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + shifted)
            shifted += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def token_bytes(token: str, style: TokenStyle) -> bytes | None:
    """The bytes a token stands for, or ``None`` when it is shown literally (special, added,
    plain scheme, or a string that is not in the scheme's alphabet)."""
    if style.scheme == "sentencepiece":
        match = _BYTE_PIECE.fullmatch(token)
        if match:
            return bytes([int(match.group(1), 16)])
        if token in style.special or token in style.literal:
            return None
        return token.replace(SENTENCEPIECE_SPACE, " ").encode("utf-8")
    if style.scheme == "byte_level":
        if token in style.special or token in style.literal:
            return None
        table = byte_decoder()
        try:
            return bytes(table[c] for c in token)
        except KeyError:
            return None
    return None


def show_tokens(tokens: Sequence[str], style: TokenStyle) -> list[ShownToken]:
    """A sequence of raw tokens as shown: byte runs across tokens are joined into characters."""
    n = len(tokens)
    texts = [""] * n
    kinds: list[str] = ["text"] * n
    spans = list(range(n))
    has_bytes = [False] * n
    broken = [False] * n
    run: list[tuple[int, int]] = []  # (token index, byte) of consecutive byte-mapped tokens
    for index, token in enumerate(tokens):
        data = token_bytes(token, style)
        if data is None:
            _decode_run(run, texts, spans, broken)
            run = []
            texts[index] = token
            kinds[index] = "special" if token in style.special else "text"
            continue
        has_bytes[index] = bool(data)
        run.extend((index, b) for b in data)
    _decode_run(run, texts, spans, broken)
    for index in range(n):
        if broken[index]:
            kinds[index] = "bytes"
        elif has_bytes[index] and texts[index] == "":
            kinds[index] = "continuation"
            continue
        spans[index] = index  # a token showing text of its own is its own span
    return [ShownToken(texts[i], kinds[i], spans[i]) for i in range(n)]


def show_token(token: str, style: TokenStyle) -> ShownToken:
    """One token on its own (a prediction): half a character is shown as its bytes."""
    return show_tokens([token], style)[0]


def readable_tokens(tokenizer: Any, ids: Iterable[int]) -> list[ShownToken]:
    """``show_tokens`` of ``ids`` with the tokenizer's own strings and style."""
    flat = [int(i) for i in ids]
    raw = tokenizer.convert_ids_to_tokens(flat)
    strings = [s if s is not None else f"<id {i}>" for i, s in zip(flat, raw, strict=True)]
    return show_tokens(strings, TokenStyle.of(tokenizer))


CONTINUATION_MARK = "\u25cc"  # ◌
_MARKS = {" ": "\u2423", "\n": "\u23ce", "\t": "\u21e5", "\r": "\u240d"}  # ␣ ⏎ ⇥ ␍


def token_pieces(token: ShownToken) -> list[tuple[str, bool]]:
    """``(text, quiet)`` runs a token is drawn with: whitespace and control characters become
    quiet marks (``␣`` ``⏎`` ``⇥``, control pictures), a continuation a quiet ``◌``, an empty
    token ``∅``. Mirror of ``tokenPieces`` in ``js/src/lib/token_text.ts``."""
    if token.kind == "continuation":
        return [(CONTINUATION_MARK, True)]
    if not token.text:
        return [("\u2205", True)]
    if token.kind in ("special", "bytes"):
        return [(token.text, False)]
    pieces: list[tuple[str, bool]] = []
    for char in token.text:
        mark = _MARKS.get(char) or (chr(0x2400 + ord(char)) if ord(char) < 0x20 else None)
        quiet = mark is not None
        shown = mark if mark is not None else char
        if pieces and pieces[-1][1] == quiet:
            pieces[-1] = (pieces[-1][0] + shown, quiet)
        else:
            pieces.append((shown, quiet))
    return pieces


def token_label(token: ShownToken) -> str:
    """The pieces of :func:`token_pieces` as one string."""
    return "".join(text for text, _ in token_pieces(token))


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"')


def readable_quoted(description: str, style: TokenStyle) -> str:
    """``description`` with every quoted token string (``log p('Ġare')``) shown as readers read
    it (``log p('␣are')``); unchanged for plain tokenizers."""
    if style.scheme == "plain":
        return description

    def shown(match: re.Match[str]) -> str:
        try:
            raw = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            return match.group(0)
        return repr(token_label(show_token(str(raw), style)))

    return _QUOTED.sub(shown, description)


def _decode_run(
    run: list[tuple[int, int]], texts: list[str], spans: list[int], broken: list[bool]
) -> None:
    """Decode UTF-8 over token boundaries: each character goes to the token of its first byte;
    tokens holding only its later bytes point there (``spans``); stray bytes show as hex."""
    i = 0
    while i < len(run):
        owner, lead = run[i]
        length = _utf8_length(lead)
        chunk = bytes(b for _, b in run[i : i + length])
        try:
            char = chunk.decode("utf-8") if length and len(chunk) == length else None
        except UnicodeDecodeError:
            char = None
        if char is None:
            texts[owner] += f"<0x{lead:02X}>"
            broken[owner] = True
            i += 1
            continue
        texts[owner] += char
        for later, _ in run[i + 1 : i + length]:
            if later != owner:
                spans[later] = owner
        i += length


def _utf8_length(lead: int) -> int:
    """Bytes in the UTF-8 sequence started by ``lead`` (0: not a lead byte)."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0
