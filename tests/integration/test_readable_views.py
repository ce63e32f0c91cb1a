"""Every view shows SentencePiece and byte-level BPE tokens as text: the AttentionWidget and
SaliencyWidget traits, saved explanations and the HTML report, on the seed's Chinese example
(random-init LLaMA paired with tokenizers built offline in tests/_tokenizers.py)."""

from __future__ import annotations

import html
import json
import re

import pytest

from llmasos_widgets import AttentionWidget, SaliencyWidget, explain
from llmasos_widgets._readable_tokens import (
    TokenStyle,
    byte_decoder,
    readable_quoted,
    show_tokens,
    token_label,
)
from llmasos_widgets.explanation import Explanation
from llmasos_widgets.models import as_explainable
from tests._tokenizers import (
    CHINESE_EXAMPLE,
    byte_level_tokenizer,
    llama_for,
    sentencepiece_tokenizer,
)

TEXT = f"{CHINESE_EXAMPLE}\nThe keys"
MOJIBAKE = {c for c, b in byte_decoder().items() if b >= 0x80}


@pytest.fixture(scope="module", params=["sentencepiece", "byte_level"])
def case(request):
    build = sentencepiece_tokenizer if request.param == "sentencepiece" else byte_level_tokenizer
    tokenizer = build()
    model = as_explainable(llama_for(tokenizer), tokenizer)
    return request.param, model, explain(model, TEXT)


def _expected_text(kind: str) -> str:
    return (" " if kind == "sentencepiece" else "") + TEXT


def _visible_text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_explanation_keeps_raw_tokens_and_records_the_style(case):
    kind, model, exp = case
    assert exp.tokens == tuple(model.tokenizer.convert_ids_to_tokens(exp.token_ids.tolist()))
    assert exp.token_style == TokenStyle.of(model.tokenizer)
    assert exp.token_style.scheme == kind
    assert CHINESE_EXAMPLE in repr(exp)  # the decoded text, not the pieces


def test_attention_widget_sends_readable_tokens(case):
    kind, _, exp = case
    widget = AttentionWidget(exp)
    assert widget.tokens == list(exp.tokens)  # raw strings stay the data
    assert "".join(widget.display_tokens[1:]) == _expected_text(kind)
    assert widget.token_kinds[0] == "special"
    assert "continuation" in widget.token_kinds
    for text, token_kind in zip(widget.display_tokens, widget.token_kinds, strict=True):
        assert (text == "") == (token_kind == "continuation")
        assert "<0x" not in text and not MOJIBAKE & set(text)
    widget.close()


def test_saliency_widget_sends_the_same_tokens(case):
    _, model, exp = case
    attention = AttentionWidget(exp)
    saliency = SaliencyWidget(model, TEXT)
    assert saliency.tokens == attention.tokens
    assert saliency.display_tokens == attention.display_tokens
    assert saliency.token_kinds == attention.token_kinds
    # the target description names its token readably too
    style = TokenStyle.of(model.tokenizer)
    assert saliency.target == readable_quoted(saliency.saliency.target, style)
    assert not MOJIBAKE & set(saliency.target) and "\u0120" not in saliency.target
    saliency.close()
    attention.close()


def test_saved_explanation_shows_the_same_tokens(case, tmp_path):
    _, _, exp = case
    loaded = Explanation.load(exp.save(tmp_path / "run.llmx"))
    assert loaded.tokens == exp.tokens
    assert loaded.token_style == exp.token_style
    assert AttentionWidget(loaded).display_tokens == AttentionWidget(exp).display_tokens


def test_report_reads_the_characters(case, tmp_path):
    _, _, exp = case
    page = exp.to_html(tmp_path / "report.html").read_text(encoding="utf-8")
    section = re.search(r"<div data-testid='report-tokens'>(.*?)</div>", page)
    assert section is not None
    shown = show_tokens(exp.tokens, exp.token_style)
    visible = _visible_text(section.group(1))
    assert visible == "".join(token_label(token) for token in shown)
    assert "<0x" not in visible and not MOJIBAKE & set(visible)
    assert CHINESE_EXAMPLE in visible.replace("\u25cc", "")  # ◌ marks continuations
    assert "\u23ceThe\u2423keys" in visible  # ⏎ newline and ␣ space marks
    assert "<span class='tok special' data-kind='special'" in section.group(1)
    # the saliency table's header shows the same labels
    header = re.search(r"<h2>Gradient saliency</h2>.*?<tr><th></th>(.*?)</tr>", page, re.S)
    assert header is not None and _visible_text(header.group(1)) == visible
    # raw strings stay available in the tooltips (exact, quoted)
    assert html.escape(repr(exp.tokens[1]), quote=True) in section.group(1)


def test_files_without_a_style_load_as_plain(case, tmp_path):
    from safetensors.torch import safe_open, save_file

    _, _, exp = case
    path = exp.save(tmp_path / "new.llmx")
    with safe_open(str(path), framework="pt") as file:
        metadata = dict(file.metadata())
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    header = json.loads(metadata["header"])
    del header["token_style"]  # as written before token styles were recorded
    metadata["header"] = json.dumps(header)
    save_file(tensors, str(tmp_path / "old.llmx"), metadata=metadata)
    old = Explanation.load(tmp_path / "old.llmx")
    assert old.token_style == TokenStyle()
    assert AttentionWidget(old).display_tokens == list(exp.tokens)


def test_word_level_tokens_are_shown_unchanged(tiny_random, tmp_path):
    text = "w1 w2 w3 w1"
    widget = AttentionWidget(tiny_random, text)
    assert widget.display_tokens == widget.tokens == ["<bos>", "w1", "w2", "w3", "w1"]
    assert widget.token_kinds == ["special", "text", "text", "text", "text"]
    saliency = SaliencyWidget(tiny_random, text)
    assert saliency.display_tokens == widget.tokens
    assert saliency.token_kinds == widget.token_kinds
    page = widget.explanation.to_html(tmp_path / "report.html").read_text(encoding="utf-8")
    section = re.search(r"<div data-testid='report-tokens'>(.*?)</div>", page)
    assert section is not None and _visible_text(section.group(1)) == "<bos>w1w2w3w1"
    saliency.close()
    widget.close()


def test_patching_views_read_the_characters(case, tmp_path):
    """The patching widget, its report and its repr show both prompts as readers read them."""
    from llmasos_widgets import PatchingWidget, activation_patching

    _, model, _ = case
    n_tokens = len(model.encode(TEXT)[0])
    candidates = (TEXT.replace("keys", word) for word in ("keyz", "kexs", "keys"))
    corrupted = next(c for c in candidates if len(model.encode(c)[0]) == n_tokens)
    result = activation_patching(model, TEXT, corrupted, target=(5, 6), heads=False)
    assert result.token_style == TokenStyle.of(model.tokenizer)
    widget = PatchingWidget(result)
    for shown in (widget.display_tokens, widget.corrupted_tokens):
        assert CHINESE_EXAMPLE in "".join(shown)
        assert not any(MOJIBAKE & set(text) or "<0x" in text for text in shown)
    widget.close()
    page = result.to_html(tmp_path / "patching.html").read_text(encoding="utf-8")
    prompts = [_visible_text(p) for p in re.findall(r'<p class="prompt">.*?</p>', page, re.S)]
    assert len(prompts) == 2
    for prompt in prompts:
        assert CHINESE_EXAMPLE in prompt
        assert not MOJIBAKE & set(prompt)
    assert CHINESE_EXAMPLE in repr(result) or "best residual cell" in repr(result)
