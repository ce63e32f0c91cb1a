"""The graph's frozen run records only its own thread's forward: JupyterLab delivers widget
messages on a kernel subshell thread, so a GraphWidget edge click (``edge_heads``) can run the
model while a cell runs it too (found by the clean-clone rehearsal of the browser test)."""

from __future__ import annotations

import threading

import torch

from llmasos_widgets._hooks import borrowed_hooks, count_hooks
from llmasos_widgets.graphs._frozen import freeze_run
from llmasos_widgets.tracing import anatomy


def test_another_threads_forward_inside_the_frozen_run_is_not_recorded(bundled):
    parts = anatomy(bundled.hf_model)
    ids = bundled.encode("the keys to the cabinet are")
    other = bundled.encode("a dog near the old tables runs fast and then stops")
    expected = freeze_run(parts, ids)
    hooks_before = count_hooks(bundled.hf_model)
    started: list[bool] = []

    def run_other() -> None:
        with torch.no_grad():
            bundled.hf_model(input_ids=other)

    def interleave(_module, _args) -> None:
        if not started:  # once: the other thread's forward passes this hook too
            started.append(True)
            worker = threading.Thread(target=run_other)
            worker.start()
            worker.join()

    with borrowed_hooks() as hooks:
        hooks.forward_pre(bundled.hf_model.model.layers[1], interleave)
        got = freeze_run(parts, ids)

    assert started and count_hooks(bundled.hf_model) == hooks_before
    torch.testing.assert_close(got.logits, expected.logits, rtol=0, atol=0)
    for name in ("patterns", "mlp_inputs", "middles", "mlp_outputs"):
        for mine, reference in zip(getattr(got, name), getattr(expected, name), strict=True):
            torch.testing.assert_close(mine, reference, rtol=0, atol=0)
    torch.testing.assert_close(got.embeddings, expected.embeddings, rtol=0, atol=0)
