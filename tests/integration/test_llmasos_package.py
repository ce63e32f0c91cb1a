"""``import llmasos``: the public API of llmasos_widgets under the shorter name, the same
objects, imported lazily; and the issue's snippet, run verbatim against the fake hub."""

from __future__ import annotations

import subprocess
import sys

import pytest

import llmasos
import llmasos_widgets
from tests.fake_hub import hub_for_tests

ISSUE_SNIPPET = """\
import llmasos
model = llmasos.load_model('llama-7b')
explanation = model.explain("这是一段示例文本。")
print(explanation)
"""


def test_all_and_dir_are_llmasos_widgets_public_names():
    assert llmasos.__all__ == llmasos_widgets.__all__
    assert "load_model" in llmasos.__all__ and "AttentionWidget" in llmasos.__all__
    assert dir(llmasos) == sorted(llmasos_widgets.__all__)
    assert llmasos.__version__ == llmasos_widgets.__version__


def test_every_name_is_the_same_object():
    assert llmasos.load_model is llmasos_widgets.load_model
    different = [
        name
        for name in llmasos.__all__
        if getattr(llmasos, name) is not getattr(llmasos_widgets, name)
    ]
    assert different == []
    from llmasos import ExplainableModel, explain

    assert explain is llmasos_widgets.explanation.explain
    assert ExplainableModel is llmasos_widgets.models.ExplainableModel


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'llmasos' has no attribute 'load_modle'"):
        _ = llmasos.load_modle
    with pytest.raises(ImportError, match="cannot import name 'trace_model'"):
        from llmasos import trace_model  # noqa: F401


def test_import_llmasos_does_not_import_torch():
    script = (
        "import sys, llmasos\n"
        "assert 'torch' not in sys.modules, 'import llmasos imported torch'\n"
        "print(llmasos.load_model.__module__)\n"
        "assert 'torch' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip() == "llmasos_widgets.models._loading"


def test_load_ext_llmasos_registers_the_explain_magic():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "llmasos")
        assert "explain" in shell.magics_manager.magics["line"]
        assert "explain" in shell.magics_manager.magics["cell"]
    finally:
        InteractiveShell.clear_instance()


@pytest.fixture
def llama_7b_on_the_hub(monkeypatch, tmp_path):
    """The fake hub serves a random-init tiny LLaMA with a LLaMA-3-like byte-level tokenizer
    (Chinese characters are split over byte tokens) as huggyllama/llama-7b."""
    from tests._tokenizers import byte_level_tokenizer, llama_for

    tokenizer = byte_level_tokenizer()
    checkpoint = tmp_path / "served" / "huggyllama-llama-7b"
    llama_for(tokenizer, seed=3).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    with hub_for_tests(monkeypatch, tmp_path) as hub:
        hub.add("huggyllama/llama-7b", checkpoint)
        yield hub, tokenizer


def test_the_issues_snippet_runs_verbatim_and_prints_chinese_readably(
    llama_7b_on_the_hub, capsys, monkeypatch, tmp_path
):
    hub, tokenizer = llama_7b_on_the_hub
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__snippet__"}
    exec(compile(ISSUE_SNIPPET, "issue snippet", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "model.safetensors" in hub.downloads("huggyllama/llama-7b")
    # the tokenizer does split the text into byte pieces (so readability is not free)
    pieces = tokenizer.convert_ids_to_tokens(tokenizer("这是一段示例文本。")["input_ids"])
    assert any("è" in piece or "ä" in piece or "ã" in piece for piece in pieces), pieces
    assert printed.startswith("Explanation('llama-7b', tokens=")
    assert "text='<|begin_of_text|>这是一段示例文本。')" in printed
    assert not any(mojibake in printed for mojibake in ("è¿", "æĺ", "ä¸", "Ġ", "\\x", "\ufffd"))
    explanation = namespace["explanation"]
    assert explanation.model_name == "llama-7b"  # type: ignore[attr-defined]
