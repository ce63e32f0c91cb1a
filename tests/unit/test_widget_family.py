"""Every widget that shows a text's tokens takes its token traits from one base."""

from __future__ import annotations

import inspect

import traitlets

import llmasos_widgets.widgets as widgets
from llmasos_widgets.widgets._base import TokensWidget

TOKEN_TRAITS = ("tokens", "display_tokens", "token_kinds")
COMPACT_WIRE = {("AttentionWidget", "display_tokens"), ("AttentionWidget", "token_kinds")}
"""Overrides that change only how a trait is sent (long texts: elided display tokens, sparse
kinds); the value and its meaning stay the base's."""


def _widget_classes() -> list[type]:
    return [
        obj
        for name in dir(widgets)
        if inspect.isclass(obj := getattr(widgets, name))
        and issubclass(obj, traitlets.HasTraits)
        and obj.__module__.startswith("llmasos_widgets.widgets.")
    ]


def test_widgets_with_tokens_share_the_tokens_base() -> None:
    with_tokens = [cls for cls in _widget_classes() if "tokens" in cls.class_trait_names()]
    assert len(with_tokens) >= 5, with_tokens  # attention, saliency, logit lens, patching, ...
    for cls in with_tokens:
        assert issubclass(cls, TokensWidget), f"{cls.__name__} shows tokens without TokensWidget"
        for name in TOKEN_TRAITS:  # defined in the base, not again in the widget
            owners = [k.__name__ for k in cls.__mro__ if name in vars(k)]
            assert owners[-1] == "TokensWidget", f"{cls.__name__}.{name} is defined in {owners}"
            again = {(owner, name) for owner in owners[:-1]}
            assert again <= COMPACT_WIRE, f"{cls.__name__}.{name} is defined again in {owners}"


def test_patching_widget_marks_the_clean_prompt_like_every_strip() -> None:
    from tests.unit.test_patching_widget import _result

    widget = widgets.PatchingWidget(_result())
    assert len(widget.token_kinds) == len(widget.tokens) == len(widget.display_tokens) == 4
    assert widget.token_kinds[2] == "text"  # markup in a token is text, shown as text
