"""Headless demo: explain a sentence with the bundled model and write an HTML report.

python -m llmasos_widgets.demo --report report.html
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_TEXT = "the keys near the cabinet are on the table . the keys near the cabinet"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--report", type=Path, default=Path("report.html"))
    parser.add_argument("--model", default="tiny-llama", help="bundled name or local path")
    parser.add_argument("--text", default=DEFAULT_TEXT)
    args = parser.parse_args(argv)

    from llmasos_widgets import load_model

    model = load_model(args.model)
    explanation = model.explain(args.text)
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
    print(f"report written to {path.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
