"""``%load_ext llmasos_widgets`` and ``%explain`` / ``%%explain`` in a real IPython shell:
the documented lines of docs/cli.md, the widgets they display, the model cache, and one-line
``UsageError``s for bad arguments."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An InteractiveShell with in-memory history and its profile under a temp dir; the
    singleton is cleared afterwards so later tests see no IPython."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    if InteractiveShell.initialized():
        pytest.fail("an IPython shell already exists in this process")
    saved = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    instance = InteractiveShell.instance(config=config)
    try:
        result = instance.run_line_magic("load_ext", "llmasos_widgets")
        assert result is None
        yield instance
    finally:
        InteractiveShell.clear_instance()
        if saved is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = saved


class Shown:
    """What one cell displayed: the objects passed to display() and the published bundles."""

    def __init__(self, objects: list[Any], bundles: list[dict[str, Any]], result: Any) -> None:
        self.objects, self.bundles, self.result = objects, bundles, result

    @property
    def kinds(self) -> list[str]:
        return [type(obj).__name__ for obj in self.objects]


def run_cell(shell: Any, source: str, monkeypatch: pytest.MonkeyPatch) -> Shown:
    """Run ``source``; record what ``%explain`` displays and what reaches the front end."""
    from IPython.utils.capture import capture_output

    import llmasos_widgets._magics as magics

    objects: list[Any] = []
    real_display = magics.display

    def recording_display(obj: Any) -> None:
        objects.append(obj)
        real_display(obj)

    monkeypatch.setattr(magics, "display", recording_display)
    with capture_output() as captured:
        result = shell.run_cell(source, store_history=False)
    monkeypatch.undo()
    return Shown(objects, [output.data for output in captured.outputs], result)


@pytest.fixture
def load_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every load_model call the magic makes (by name or with a model object)."""
    import llmasos_widgets as lw

    calls: list[Any] = []
    real = lw.load_model

    def counting(source: Any, **kwargs: Any) -> Any:
        calls.append(source)
        return real(source, **kwargs)

    monkeypatch.setattr(lw, "load_model", counting)
    return calls


def documented_cells() -> list[str]:
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"^```text\n(%load_ext.*?)^```", page, re.MULTILINE | re.DOTALL)
    cells: list[str] = []
    for line in block.splitlines():
        if line.startswith("%") or not cells:
            cells.append(line)
        else:  # the body of a %%explain cell
            cells[-1] += "\n" + line
    return cells


def test_the_documented_magics(shell: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmasos_widgets as lw
    from llmasos_widgets import AttentionWidget, Explanation, SaliencyWidget

    cells = documented_cells()
    assert cells[0] == "%load_ext llmasos_widgets"
    assert len(cells) == 4 and cells[3].startswith("%%explain")
    calls: list[Any] = []
    real_load = lw.load_model

    def counting(source: Any, **kwargs: Any) -> Any:
        calls.append(source)
        return real_load(source, **kwargs)

    shown = []
    for cell in cells[1:]:
        monkeypatch.setattr(lw, "load_model", counting)
        shown.append(run_cell(shell, cell, monkeypatch))
        assert shown[-1].result.success, (cell, shown[-1].result.error_in_exec)
    assert calls == ["tiny-llama"], "the model is loaded once, then cached"

    plain, contrast, cell = shown
    for each in shown:
        assert each.kinds == ["AttentionWidget", "SaliencyWidget"]
        # both widgets reached the display publisher as widget views, in order
        assert [b[WIDGET_VIEW]["model_id"] for b in each.bundles] == [
            w.model_id for w in each.objects
        ]
    attention, saliency = plain.objects
    assert isinstance(attention, AttentionWidget) and isinstance(saliency, SaliencyWidget)
    assert attention.tokens == saliency.tokens == ["<bos>", "the", "keys", "to", "the", "cabinet"]
    assert saliency.method == "occlusion"  # "auto", the CLI's default, for a short text
    # linked selections: a head chosen in one view is chosen in the other
    attention.selected_layer = 2
    assert saliency.selected_layer == 2

    stored = shell.user_ns["keys"]
    assert isinstance(stored, Explanation) and stored.tokens[2] == "keys"
    contrast_saliency = contrast.objects[1].saliency
    assert contrast_saliency.target == "logit('are') - logit('is') after token 5"
    assert contrast_saliency.f_x > 0  # plural subject: 'are' beats 'is'

    assert cell.objects[1].method == "input_x_gradient"
    assert cell.objects[0].tokens == ["<bos>", "the", "key", "near", "the", "boxes"]


def test_a_model_variable_is_used_as_is(
    shell: Any, bundled: Any, monkeypatch: pytest.MonkeyPatch, load_calls: list[Any]
) -> None:
    shell.user_ns["my_model"] = bundled
    shown = run_cell(shell, "%explain --no-saliency my_model the key near the boxes", monkeypatch)
    assert shown.result.success, shown.result.error_in_exec
    assert shown.kinds == ["AttentionWidget"]
    assert load_calls == [bundled]  # wrapped as given, not loaded by name
    assert shown.objects[0].tokens[-1] == "boxes"


def test_help_prints_the_usage(
    shell: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        result = shell.run_cell("%explain --help", store_history=False)
    assert result.success and result.result is None
    assert captured.stdout.startswith("%explain [options] MODEL TEXT")
    assert captured.outputs == []


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("%explain", "give a MODEL"),
        ("%explain tiny-llama", "no TEXT after MODEL"),
        ("%explain tiny-llama    ", "no TEXT after MODEL"),
        ("%%explain tiny-llama\n   \n", "the cell is empty"),
        ("%%explain tiny-llama the keys\nthe keys", "the text is the cell's body"),
        ("%explain --bogus tiny-llama the keys", "unrecognized arguments: --bogus"),
        ("%explain --dtype int8 tiny-llama the keys", "invalid choice: 'int8'"),
        ("%explain --foil is tiny-llama the keys", "--foil needs --target"),
        ("%explain --truncate tiny-llama the keys", "--truncate needs --no-saliency"),
        ("%explain --store 1x tiny-llama the keys", "--store needs a variable name, got '1x'"),
        ("%explain --device cpu my_model the keys", "apply to a model the magic loads by name"),
        ("%explain --tokenizer tok tiny-llama the keys", "--tokenizer goes with a model variable"),
        ("%explain no-such-model the keys", "unknown model name 'no-such-model'"),
        ("%explain --method nope tiny-llama the keys", "unknown attribution method 'nope'"),
        ("%explain --target zzz tiny-llama the keys", "'zzz' is not in the vocabulary"),
    ],
)
def test_bad_arguments_raise_one_usage_error(
    shell: Any, bundled: Any, source: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from IPython.core.error import UsageError

    shell.user_ns["my_model"] = bundled
    shown = run_cell(shell, source, monkeypatch)
    error = shown.result.error_in_exec
    assert isinstance(error, UsageError), error
    assert str(error).startswith("%explain: ") or str(error).startswith("%%explain: ")
    assert message in str(error)
    assert shown.objects == [] and shown.bundles == []


def test_debug_raises_the_original_error(shell: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmasos_widgets.models import ModelNotFoundError

    shown = run_cell(shell, "%explain --debug no-such-model the keys", monkeypatch)
    assert isinstance(shown.result.error_in_exec, ModelNotFoundError)


def test_the_line_splits_options_model_and_verbatim_text() -> None:
    from llmasos_widgets._magics import split_magic_line

    assert split_magic_line("""--target " are" --no-saliency m it's "quoted"  text """) == (
        ["--target", " are", "--no-saliency"],
        "m",
        """it's "quoted"  text""",
    )
    assert split_magic_line("--method 'integrated_gradients' tiny-llama a") == (
        ["--method", "integrated_gradients"],
        "tiny-llama",
        "a",
    )
    assert split_magic_line("   ") == ([], None, "")
