"""Borrowed hooks are held by one thread at a time (llmasos_widgets/_hooks.py): a widget's
click handled on a kernel subshell thread must not fire the hooks of a cell tracing the same
model, nor the cell fire the click's."""

from __future__ import annotations

import threading

import torch

from llmasos_widgets._hooks import borrowed_hooks


def test_a_second_thread_waits_until_the_first_gives_its_hooks_back():
    layer = torch.nn.Linear(2, 2)
    seen: dict[str, list[str]] = {"first": [], "second": []}
    first_inside, second_done = threading.Event(), threading.Event()

    def second() -> None:
        with borrowed_hooks() as hooks:
            hooks.forward(layer, lambda *_: seen["second"].append("hook"))
            layer(torch.ones(1, 2))
        second_done.set()

    with borrowed_hooks() as hooks:
        hooks.forward(layer, lambda *_: seen["first"].append("hook"))
        first_inside.set()
        worker = threading.Thread(target=second)
        worker.start()
        # the second thread cannot borrow while this block holds hooks on the model
        assert not second_done.wait(0.3)
        layer(torch.ones(1, 2))
    worker.join(timeout=10)
    assert second_done.is_set()
    assert seen == {"first": ["hook"], "second": ["hook"]}  # each forward fired its own hook only
    assert not layer._forward_hooks


def test_the_same_thread_may_borrow_inside_its_own_block():
    layer = torch.nn.Linear(2, 2)
    with borrowed_hooks() as outer, borrowed_hooks() as inner:
        outer.forward(layer, lambda *_: None)
        inner.forward(layer, lambda *_: None)
        assert len(layer._forward_hooks) == 2
    assert not layer._forward_hooks
