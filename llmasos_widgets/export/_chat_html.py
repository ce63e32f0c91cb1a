"""The HTML report's conversation section (an Explanation of ``messages=[...]``).

One row per message: its role (and whether it was generated), its token range and its tokens
as escaped text, and with saliency the map's sum over the message's tokens at the embeddings
(``Explanation.saliency_by_message``). Token strings are escaped text, as in ``_html.py``.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from llmasos_widgets._readable_tokens import TokenStyle, show_tokens, token_label

if TYPE_CHECKING:
    from llmasos_widgets.explanation import Explanation


def messages_section(explanation: Explanation) -> str:
    """``""`` unless ``explanation`` is of a conversation."""
    messages = getattr(explanation, "messages", ())
    if not messages:
        return ""
    style = explanation.token_style if isinstance(explanation.token_style, TokenStyle) else None
    shown = show_tokens(explanation.tokens, style or TokenStyle())
    sums = explanation.saliency_by_message() if explanation.saliency is not None else {}
    rows = []
    for index, message in enumerate(messages):
        chips = "".join(
            f"<span class='tok' title='{_title(i, explanation.tokens[i])}'>"
            f"{html.escape(token_label(shown[i]))}</span>"
            for i in range(message.start, message.end)
        )
        total = sums.get(f"{index} {message.label}")
        cell = "" if total is None else f"<td>{float(total[0]):.3f}</td>"
        rows.append(
            f"<tr data-testid='report-message-{index}' "
            f"data-role='{html.escape(message.role, quote=True)}'>"
            f"<th>{index} {html.escape(message.label)}</th>"
            f"<td>{message.start}..{message.end - 1}</td>{cell}<td>{chips}</td></tr>"
        )
    saliency_head = "<th>saliency (emb, sum)</th>" if sums else ""
    outside = ""
    if "template" in sums:
        outside = (
            f"<p class='muted'>Tokens the chat template writes before the first message "
            f"belong to no message (saliency sum {float(sums['template'][0]):.3f}).</p>"
        )
    return (
        "<section data-testid='report-messages'><h2>Conversation</h2>"
        "<p class='muted'>Each message's tokens: its role header, content and end-of-turn "
        "tokens, as the tokenizer's chat template wrote them.</p>"
        f"<table><tr><th>message</th><th>tokens</th>{saliency_head}<th>text</th></tr>"
        + "".join(rows)
        + f"</table>{outside}</section>"
    )


def _title(index: int, raw: str) -> str:
    return html.escape(f"position {index}, raw {raw!r}", quote=True)
