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
    explanation = model.explain(args.text, target=tuple(args.target))
    path = explanation.to_html(args.report)
    last = explanation.n_tokens - 1
    print(explanation)
    print(
        "next token:",
        ", ".join(
            f"{token!r} {p:.2f}"
            for token, p in zip(
                explanation.top_tokens[last], explanation.top_probs[last], strict=True
            )
        ),
    )
    for name in ("induction", "previous_token"):
        layer, head, score = explanation.top_heads(name, 1)[0]
        print(f"top {name} head: layer {layer} head {head} ({score:.2f})")
    saliency = explanation.saliency
    if saliency is not None:
        row = abs(saliency.at(0))
        top = int(row.argmax())
        print(
            f"saliency of {saliency.target}: largest at {saliency.tokens[top]!r} ({row[top]:.2f})"
        )
    print(f"report written to {path.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
