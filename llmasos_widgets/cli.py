"""The ``llmasos-widgets`` command: explain a text with a model, write an HTML report.

Exit codes: 0 done, 1 a run-time error (unknown model, empty text, unreadable file; one line on
stderr, the traceback only with ``--debug``), 2 a usage error (argparse's convention).
The parser's explain options are shared with the IPython magics (``_magics.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

PROG = "llmasos-widgets"
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

# explain's default (llmasos_widgets.explanation._explain.SALIENCY_METHOD; a test checks they
# agree), repeated so that `--help` needs no torch import
SALIENCY_METHOD = "auto"  # occlusion up to 64 tokens, gradient beyond (docs/saliency.md)
DTYPES = ("auto", "float32", "bfloat16", "float16")

DESCRIPTION = """\
Explain what a LLaMA-family language model does on a text: exact attention patterns, head
summaries, next-token predictions, the logit lens and gradient saliency, written as a
standalone HTML report (no network needed to view it) or saved for later."""

EXAMPLES = """\
examples:
  llmasos-widgets explain tiny-llama "the keys to the cabinet" --report keys.html
  llmasos-widgets explain tiny-llama --file prompt.txt --target are --foil is --report r.html
  echo "the key near the boxes" | llmasos-widgets explain tiny-llama - --save run.llmx
  llmasos-widgets explain meta-llama/Llama-3.2-1B "Paris is the capital of" \\
      --device cuda --dtype bfloat16 --method integrated_gradients --report paris.html
  llmasos-widgets report run.llmx --out run.html

MODEL is a bundled model (tiny-llama), a short name (llama-3.1-8b), a local Hugging Face
directory or a hub id. In a notebook: %load_ext llmasos_widgets, then %explain (docs/cli.md)."""


class CliError(Exception):
    """A user-caused problem reported as one line (exit code 1)."""


def add_explain_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``llmasos-widgets explain`` and the ``%explain`` magic."""
    parser.add_argument(
        "--target",
        metavar="TOKEN",
        help="the next token whose saliency is explained (one token of the model's vocabulary, "
        "e.g. ' are'); default: the model's own prediction after the last token",
    )
    parser.add_argument(
        "--foil",
        metavar="TOKEN",
        help="explain TARGET versus this token (logit difference), e.g. --target are --foil is",
    )
    parser.add_argument(
        "--method",
        default=SALIENCY_METHOD,
        metavar="NAME",
        help="saliency method: auto (default: occlusion up to 64 tokens, gradient beyond) or a "
        "name from llmasos_widgets.attribution.available_methods(); an unknown name is refused "
        "with the list",
    )
    parser.add_argument(
        "--no-saliency", action="store_true", help="skip saliency (attention and predictions only)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="where the model runs: auto (CUDA when present), cpu, cuda, cuda:1, mps "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPES,
        help="weights' dtype; auto is float32 on CPU, bfloat16 on a GPU (default: %(default)s)",
    )
    parser.add_argument(
        "--truncate",
        action="store_true",
        help="keep the first tokens that fit the model's context instead of failing",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback when something fails"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    explain = commands.add_parser(
        "explain",
        help="explain a text with a model",
        description="Explain TEXT with MODEL: print a summary, write an HTML report (--report)\n"
        "and/or save the explanation itself (--save; read back by `report` or\n"
        "Explanation.load).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("model", metavar="MODEL", help="model name, directory or hub id")
    explain.add_argument(
        "text", metavar="TEXT", nargs="?", help="the text to explain; '-' reads standard input"
    )
    explain.add_argument(
        "--file", "-f", type=Path, metavar="PATH", help="read the text from a UTF-8 file"
    )
    add_explain_options(explain)
    explain.add_argument("--report", type=Path, metavar="OUT.html", help="write an HTML report")
    explain.add_argument(
        "--save",
        type=Path,
        metavar="OUT.llmx",
        help="save the explanation (one safetensors file with JSON metadata)",
    )
    explain.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")

    report = commands.add_parser(
        "report",
        help="write the HTML report of a saved explanation",
        description="Write the standalone HTML report of an explanation saved by "
        "`explain --save` or Explanation.save.",
    )
    report.add_argument("saved", type=Path, metavar="SAVED", help="a saved explanation")
    report.add_argument(
        "--out", "-o", type=Path, required=True, metavar="OUT.html", help="the report to write"
    )
    report.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    return parser


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None) -> int:
    """Run the command line; returns the exit code (usage errors exit 2 through argparse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "explain":
        _check_explain_usage(parser, args)
    try:
        if args.command == "explain":
            _explain(args, stdin if stdin is not None else sys.stdin)
        else:
            _report(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug or not _is_user_error(error):
            raise
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _check_explain_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.text is None) == (args.file is None):
        parser.error("give the text as TEXT, '-' (standard input) or --file PATH (exactly one)")
    if args.foil is not None and args.target is None:
        parser.error("--foil needs --target: it explains TARGET versus FOIL")
    if args.no_saliency and (args.target is not None or args.method != SALIENCY_METHOD):
        parser.error("--no-saliency cannot be combined with --target, --foil or --method")


def read_text(text: str | None, file: Path | None, stdin: TextIO) -> str:
    """The text to explain from an argument, ``-`` (stdin) or a file; surrounding whitespace
    (a file's final newline) is dropped. Empty text is an error."""
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise CliError(f"{str(file)!r} is not UTF-8 text ({error.reason})") from error
        except OSError as error:
            raise CliError(f"cannot read {str(file)!r}: {error.strerror or error}") from error
        where = repr(str(file))
    elif text == "-":
        value, where = stdin.read(), "standard input"
    else:
        value, where = str(text), "TEXT"
    value = value.strip()
    if not value:
        raise CliError(f"the text from {where} is empty; give at least one word to explain")
    return value


def explain_target(target: str | None, foil: str | None) -> Any:
    """The ``target=`` of ``explain``/``attribute`` for ``--target``/``--foil``."""
    if target is None:
        return None
    return target if foil is None else (target, foil)


def _explain(args: argparse.Namespace, stdin: TextIO) -> None:
    text = read_text(args.text, args.file, stdin)
    import llmasos_widgets as lw

    model = lw.load_model(args.model, device=args.device, dtype=args.dtype)
    explanation = model.explain(
        text,
        target=explain_target(args.target, args.foil),
        saliency=not args.no_saliency,
        saliency_method=args.method,
        truncate=args.truncate,
    )
    if not args.quiet:
        print(explanation)
    if args.save is not None:
        written = explanation.save(args.save)
        _say(args, f"saved the explanation to {written}")
    if args.report is not None:
        written = explanation.to_html(args.report)
        _say(args, f"wrote the report to {written}")


def _report(args: argparse.Namespace) -> None:
    from llmasos_widgets import Explanation

    if not args.saved.is_file():
        raise CliError(f"no saved explanation at {str(args.saved)!r}")
    explanation = Explanation.load(args.saved)
    written = explanation.to_html(args.out)
    _say(args, f"wrote the report of {explanation!r} to {written}")


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message)


def _is_user_error(error: Exception) -> bool:
    """Errors the user's input causes (reported in one line); anything else is a bug and
    keeps its traceback. The library's own errors derive from these (ModelNotFoundError and
    ExplanationFileError are ValueErrors)."""
    return isinstance(error, (CliError, ValueError, TypeError, LookupError, OSError))


def one_line(error: BaseException) -> str:
    """The error's message on one line (library messages may wrap)."""
    lines = [" ".join(line.split()) for line in str(error).splitlines()]
    message = ""
    for line in filter(None, lines):
        glue = " " if not message or message.endswith((".", ":", ";", ",")) else ": "
        message = f"{message}{glue}{line}" if message else line
    return message or type(error).__name__


def _version() -> str:
    from llmasos_widgets import __version__

    return __version__


def run() -> None:  # the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover - python -m llmasos_widgets.cli
    run()
