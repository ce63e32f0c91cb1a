"""Headless demo: explain a sentence with the bundled model and write an HTML report.

python -m llmasos_widgets.demo --report report.html
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_TEXT = "the keys near the cabinet"
DEFAULT_TARGET = ("are", "is")  # which verb, and why: the subject "keys", not "cabinet"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--report", type=Path, default=Path("report.html"))
    parser.add_argument("--model", default="tiny-llama", help="bundled name or local path")
    parser.add_argument("--text", default=DEFAULT_TEXT)
    parser.add_argument(
        "--target",
        nargs=2,
        default=DEFAULT_TARGET,
        metavar=("TOKEN", "FOIL"),
        help="saliency of logit(TOKEN) - logit(FOIL) after the text",
    )
    args = parser.parse_args(argv)

    from llmasos_widgets import load_model

    model = load_model(args.model)
    # gradient saliency: the bundled model's known answer (the subject, not the attractor, drives
    # are-vs-is; its model card); explain's "auto" default would pick occlusion for this text
    explanation = model.explain(args.text, target=tuple(args.target), saliency_method="gradient")
    path = explanation.to_html(args.report)
    print(explanation)  # text, next tokens, most salient tokens, notable heads
    print(f"report written to {path.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
