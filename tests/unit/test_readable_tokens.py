"""Tokens shown as readers read them, for SentencePiece, byte-level BPE and word-level
tokenizers built offline (tests/_tokenizers.py)."""

from __future__ import annotations

import pytest

from llmasos_widgets._readable_tokens import (
    ShownToken,
    TokenStyle,
    byte_decoder,
    detect_scheme,
    readable_quoted,
    readable_tokens,
    show_token,
    show_tokens,
    token_bytes,
    token_label,
    token_pieces,
)
from tests._tokenizers import CHINESE_EXAMPLE, byte_level_tokenizer, sentencepiece_tokenizer

# characters a byte-level alphabet uses for bytes >= 0x80: seeing one is mojibake ("è¿")
MOJIBAKE = {c for c, b in byte_decoder().items() if b >= 0x80}


@pytest.fixture(scope="module", params=["sentencepiece", "byte_level"])
def kind_and_tokenizer(request):
    build = sentencepiece_tokenizer if request.param == "sentencepiece" else byte_level_tokenizer
    return request.param, build()


def _expected_by_first_byte(raw: list[str], style: TokenStyle) -> list[str]:
    """Characters placed on the token holding their first byte, from byte lengths alone."""
    owners: list[int] = []
    joined = b""
    for index, token in enumerate(raw):
        if token in style.special:
            continue
        data = token_bytes(token, style)
        assert data is not None
        owners += [index] * len(data)
        joined += data
    expected = ["" for _ in raw]
    offset = 0
    for char in joined.decode("utf-8"):
        expected[owners[offset]] += char
        offset += len(char.encode("utf-8"))
    return expected


def test_scheme_is_detected_from_the_backend(kind_and_tokenizer):
    kind, tokenizer = kind_and_tokenizer
    assert detect_scheme(tokenizer) == kind
    assert TokenStyle.of(tokenizer).scheme == kind


def test_chinese_example_reads_as_its_characters(kind_and_tokenizer):
    kind, tokenizer = kind_and_tokenizer
    ids = tokenizer(CHINESE_EXAMPLE)["input_ids"]
    raw = tokenizer.convert_ids_to_tokens(ids)
    shown = readable_tokens(tokenizer, ids)
    text = "".join(token.text for token in shown[1:])
    # SentencePiece writes a word start before the text (▁), shown as a space
    assert text == (" " if kind == "sentencepiece" else "") + CHINESE_EXAMPLE
    assert not any("<0x" in token.text for token in shown)
    assert not MOJIBAKE & set(text)
    # the example really is split inside characters: byte pieces / partial bytes per token
    continuations = [i for i, token in enumerate(shown) if token.kind == "continuation"]
    assert continuations, raw
    if kind == "sentencepiece":
        assert any(t.startswith("<0x") for t in raw)
    else:
        assert any(MOJIBAKE & set(t) for t in raw)
    style = TokenStyle.of(tokenizer)
    assert [token.text for token in shown[1:]] == _expected_by_first_byte(raw, style)[1:]
    for i in continuations:
        lead = shown[i].span
        assert lead < i and shown[lead].kind == "text" and shown[lead].text
        assert all(shown[j].kind == "continuation" for j in range(lead + 1, i + 1))


def test_specials_are_marked_and_kept(kind_and_tokenizer):
    _, tokenizer = kind_and_tokenizer
    ids = tokenizer("The keys")["input_ids"]
    shown = readable_tokens(tokenizer, ids)
    assert shown[0] == ShownToken(tokenizer.bos_token, "special", 0)
    assert [t.kind for t in shown[1:]] == ["text"] * (len(shown) - 1)


def test_spaces_and_newlines_are_quiet_marks(kind_and_tokenizer):
    _, tokenizer = kind_and_tokenizer
    ids = tokenizer("The keys\n to the table")["input_ids"]
    shown = readable_tokens(tokenizer, ids)
    assert "".join(t.text for t in shown[1:]).lstrip(" ") == "The keys\n to the table"
    labels = "".join(token_label(t) for t in shown[1:])
    assert labels.lstrip("\u2423") == "The\u2423keys\u23ce\u2423to\u2423the\u2423table"
    spaced = next(t for t in shown if t.text.startswith(" ") and len(t.text) > 1)
    assert token_pieces(spaced)[0] == ("\u2423", True)
    assert token_pieces(spaced)[1] == (spaced.text[1:], False)


def test_emoji_across_tokens(kind_and_tokenizer):
    _, tokenizer = kind_and_tokenizer
    shown = readable_tokens(tokenizer, tokenizer("see you 🙂")["input_ids"])
    assert "".join(t.text for t in shown[1:]).strip() == "see you 🙂"


def test_half_a_character_alone_shows_its_bytes():
    byte_level = TokenStyle(scheme="byte_level")
    # 这 is E8 BF 99: "è¿" is its first two bytes in the byte-level alphabet
    assert show_token("è¿", byte_level) == ShownToken("<0xE8><0xBF>", "bytes", 0)
    assert show_token("Ġthe", byte_level) == ShownToken(" the", "text", 0)
    sentencepiece = TokenStyle(scheme="sentencepiece")
    assert show_token("<0xE8>", sentencepiece) == ShownToken("<0xE8>", "bytes", 0)
    assert show_token("▁the", sentencepiece) == ShownToken(" the", "text", 0)
    assert show_token("<0x0A>", sentencepiece) == ShownToken("\n", "text", 0)
    # a stray continuation byte after a whole character is shown as a byte, not dropped
    assert show_tokens(["a", "\u00bf"], byte_level)[1] == ShownToken("<0xBF>", "bytes", 1)


def test_a_character_starting_inside_a_token_is_shown_there():
    style = TokenStyle(scheme="byte_level")
    # 是 = E6 98 AF, 一 = E4 B8 80: the second token ends 是 and starts 一
    tokens = ["æĺ", "¯ä¸", "Ģ"]
    assert [(t.text, t.kind, t.span) for t in show_tokens(tokens, style)] == [
        ("是", "text", 0),
        ("一", "text", 1),
        ("", "continuation", 1),
    ]


def test_word_level_tokens_are_unchanged(bundled_tokenizer):
    ids = bundled_tokenizer("the keys to the cabinet are on the table .")["input_ids"]
    raw = bundled_tokenizer.convert_ids_to_tokens(ids)
    shown = readable_tokens(bundled_tokenizer, ids)
    assert TokenStyle.of(bundled_tokenizer).scheme == "plain"
    assert [t.text for t in shown] == raw
    assert [t.kind for t in shown] == ["special"] + ["text"] * (len(raw) - 1)
    # a word-level vocabulary may hold ▁ or Ġ as letters: plain keeps them
    plain = TokenStyle(special=frozenset({"<bos>"}))
    assert show_tokens(["<bos>", "Ġx", "▁y"], plain) == [
        ShownToken("<bos>", "special", 0),
        ShownToken("Ġx", "text", 1),
        ShownToken("▁y", "text", 2),
    ]


def test_added_tokens_are_literal():
    style = TokenStyle(scheme="byte_level", literal=frozenset({"  "}))
    assert show_token("  ", style) == ShownToken("  ", "text", 0)
    # a string outside the byte alphabet is shown as it is
    assert show_token("<id 7>", TokenStyle(scheme="byte_level")).text == "<id 7>"


def test_slow_tokenizers_are_detected():
    class SentencePieceLike:
        sp_model = object()

    class ByteLevelLike:
        byte_encoder = ("Ā",)

    assert detect_scheme(SentencePieceLike()) == "sentencepiece"
    assert detect_scheme(ByteLevelLike()) == "byte_level"
    assert detect_scheme(object()) == "plain"


def test_llama2_normalizer_layout_is_sentencepiece():
    """LLaMA-2's own tokenizer.json writes ▁ in a normaliser and has no pre-tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(vocab={"<unk>": 0, "▁a": 1}, merges=[], unk_token="<unk>"))
    backend.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Fuse()])
    assert detect_scheme(PreTrainedTokenizerFast(tokenizer_object=backend)) == "sentencepiece"


@pytest.mark.parametrize(
    ("scheme", "raw", "labels"),
    [  # the rows of the table in docs/widgets.md "How tokens are shown"
        ("sentencepiece", ["▁The", "<0xE7>", "<0xA4>", "<0xBA>"], ["␣The", "示", "◌", "◌"]),
        ("byte_level", ["ĠThe", "Ċ", "è¿Ļæĺ¯ä¸", "Ģ"], ["␣The", "⏎", "这是一", "◌"]),
        ("plain", ["<bos>", "the"], ["<bos>", "the"]),
    ],
)
def test_documented_examples(scheme, raw, labels):
    style = TokenStyle(scheme=scheme, special=frozenset({"<bos>"}))
    assert [token_label(t) for t in show_tokens(raw, style)] == labels


def test_quoted_tokens_in_descriptions_read_as_text():
    byte_level = TokenStyle(scheme="byte_level")
    assert (
        readable_quoted("logit('Ġare') - logit('Ġis') after token 5", byte_level)
        == "logit('\u2423are') - logit('\u2423is') after token 5"
    )
    assert readable_quoted("log p('è¿Ļ') after token 2", byte_level) == "log p('这') after token 2"
    sentencepiece = TokenStyle(scheme="sentencepiece")
    assert readable_quoted("log p('▁the') after token 1", sentencepiece) == (
        "log p('\u2423the') after token 1"
    )
    # plain tokenizers: unchanged, even for strings that look like pieces
    assert readable_quoted("log p('Ġare')", TokenStyle()) == "log p('Ġare')"


def test_style_round_trips_through_json():
    style = TokenStyle(
        scheme="sentencepiece", special=frozenset({"<s>", "</s>"}), literal=frozenset({"<x>"})
    )
    assert TokenStyle.from_json(style.to_json()) == style
    assert TokenStyle.from_json(None) == TokenStyle()
    with pytest.raises(ValueError, match="unknown token scheme 'wordpiece'"):
        TokenStyle(scheme="wordpiece")


@pytest.fixture(scope="module")
def bundled_tokenizer():
    from transformers import AutoTokenizer

    from llmasos_widgets.models._loading import BUNDLED_MODELS

    return AutoTokenizer.from_pretrained(str(BUNDLED_MODELS["tiny-llama"]))
