"""IPython magics: ``%load_ext llmasos_widgets``, then ``%explain`` / ``%%explain``.

``%explain [options] MODEL TEXT`` and ``%%explain [options] MODEL`` (the cell's body is the
text) explain the text and display an ``AttentionWidget`` and a ``SaliencyWidget`` whose
selections are linked. MODEL is a variable of the user's namespace holding a loaded model
(``ExplainableModel``, or a ``transformers`` model with ``--tokenizer VAR``) or a name that
``load_model`` understands; loaded names are cached by this extension, per IPython session.
Options come before MODEL and are those of ``llmasos-widgets explain`` (``cli.py``), plus
``--store VAR`` (bind the ``Explanation`` to a variable) and ``--tokenizer VAR``. Everything
after MODEL is the text, verbatim. Bad arguments and user errors raise ``UsageError`` (one
line, no traceback) unless ``--debug``.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

from llmasos_widgets.cli import add_explain_options, explain_target, one_line

# an option or its value: a quoted string (quotes dropped) or a run of non-blanks
_WORD = re.compile(r"""\s*("(?P<double>[^"]*)"|'(?P<single>[^']*)'|(?P<bare>\S+))""")

USAGE = """\
%explain [options] MODEL TEXT        explain TEXT (the rest of the line)
%%explain [options] MODEL            explain the cell's body
MODEL: a variable holding a loaded model, or a name such as tiny-llama (loaded once, cached)
options: --target TOKEN [--foil TOKEN] --method NAME --no-saliency --device DEV --dtype DT
         --truncate --tokenizer VAR --store VAR --debug"""


class _MagicArgumentParser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` instead of exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%explain: {message}\n{USAGE}")


def _parser() -> argparse.ArgumentParser:
    parser = _MagicArgumentParser(prog="%explain", add_help=False)
    add_explain_options(parser)
    parser.add_argument("--tokenizer", metavar="VAR")
    parser.add_argument("--store", metavar="VAR")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--help", "-h", action="store_true")
    return parser


def split_magic_line(line: str) -> tuple[list[str], str | None, str]:
    """``(options, model, rest)``: leading ``-``/``--`` words and their values (quotes
    removed), the first word after them, and the rest of the line verbatim."""
    parser = _parser()
    takes_value = {
        option
        for action in parser._actions
        if action.nargs is None and action.option_strings and action.const is None
        for option in action.option_strings
    }
    options: list[str] = []
    position = 0
    expecting_value = False
    while True:
        match = _WORD.match(line, position)
        if match is None:
            return options, None, ""
        word = next(v for v in match.group("double", "single", "bare") if v is not None)
        if expecting_value or word.startswith("-"):
            options.append(word)
            expecting_value = not expecting_value and word in takes_value
            position = match.end()
            continue
        return options, word, line[match.end() :].strip()


@magics_class
class ExplainMagics(Magics):
    """``%explain`` / ``%%explain``; models loaded by name are cached on this instance."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._models: dict[tuple[str, str, str], Any] = {}

    def _user_ns(self) -> dict[str, Any]:
        if self.shell is None:  # registered on a shell by load_ipython_extension
            raise UsageError("%explain needs an IPython shell: %load_ext llmasos_widgets")
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    @line_cell_magic
    def explain(self, line: str, cell: str | None = None) -> None:
        """Explain a text with a model and show the attention and saliency widgets.

        %explain [options] MODEL TEXT
        %%explain [options] MODEL      (the cell's body is the text)

        See ``llmasos_widgets._magics`` or docs/cli.md for the options."""
        option_words, model_name, rest = split_magic_line(line)
        args = _parser().parse_args(option_words)
        if args.help:
            print(USAGE)
            return
        try:
            self._explain(args, model_name, rest, cell)
        except UsageError:
            raise
        except (ValueError, TypeError, LookupError, OSError) as error:
            if args.debug:
                raise
            raise UsageError(f"%explain: {one_line(error)}") from error

    def _explain(self, args: argparse.Namespace, name: str | None, rest: str, cell: Any) -> None:
        if name is None:
            raise UsageError(f"%explain: give a MODEL (a variable or a model name)\n{USAGE}")
        if cell is None:
            text = rest
        elif rest:
            raise UsageError(
                f"%%explain: the text is the cell's body; the line after MODEL must be empty, "
                f"got {rest!r}"
            )
        else:
            text = cell.strip()
        if not text:
            where = "the cell is empty" if cell is not None else "no TEXT after MODEL"
            raise UsageError(f"%explain: {where}; give at least one word to explain\n{USAGE}")
        if args.foil is not None and args.target is None:
            raise UsageError("%explain: --foil needs --target: it explains TARGET versus FOIL")
        if args.truncate and not args.no_saliency:
            raise UsageError(
                "%explain: --truncate needs --no-saliency "
                "(the saliency widget explains whole texts)"
            )
        if args.store is not None and not args.store.isidentifier():
            raise UsageError(f"%explain: --store needs a variable name, got {args.store!r}")
        model = self._model(name, args)

        from llmasos_widgets.explanation import resolve_saliency_method
        from llmasos_widgets.widgets import AttentionWidget, SaliencyWidget, link_selection

        explanation = model.explain(text, saliency=False, truncate=args.truncate)
        attention = AttentionWidget(explanation)
        if args.store is not None:
            self._user_ns()[args.store] = explanation
        if args.no_saliency:
            display(attention)
            return
        saliency = SaliencyWidget(
            model,
            text,
            target=explain_target(args.target, args.foil),
            method=resolve_saliency_method(args.method, explanation.n_tokens),  # "auto" too
        )
        link_selection(attention, saliency)
        display(attention)
        display(saliency)

    def _model(self, name: str, args: argparse.Namespace) -> Any:
        """The user's variable ``name``, or the model called ``name`` (loaded once)."""
        from llmasos_widgets import load_model

        namespace = self._user_ns()
        if name.isidentifier() and name in namespace:
            if args.device != "auto" or args.dtype != "auto":
                raise UsageError(
                    f"%explain: --device/--dtype apply to a model the magic loads by name; "
                    f"{name!r} is your variable: move or cast it yourself"
                )
            tokenizer = None
            if args.tokenizer is not None:
                if args.tokenizer not in namespace:
                    raise UsageError(f"%explain: no variable {args.tokenizer!r} for --tokenizer")
                tokenizer = namespace[args.tokenizer]
            return load_model(namespace[name], tokenizer=tokenizer)
        if args.tokenizer is not None:
            raise UsageError("%explain: --tokenizer goes with a model variable, not a name")
        key = (name, args.device, args.dtype)
        if key not in self._models:
            self._models[key] = load_model(name, device=args.device, dtype=args.dtype)
        return self._models[key]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%explain`` / ``%%explain`` (``%load_ext llmasos_widgets``)."""
    ipython.register_magics(ExplainMagics)
