"""``Saliency.convergence_warning``: when integrated gradients count as unconverged (a row's
|delta| above 5% of |f(x) − f(baseline)|), which rows it names, and the advice it gives."""

from __future__ import annotations

import numpy as np
import pytest

from llmasos_widgets.attribution import CONVERGENCE_TOLERANCE, ConvergenceWarning, Saliency


def _saliency(delta: list[float] | None, **overrides: object) -> Saliency:
    fields: dict[str, object] = {
        "scores": np.zeros((3, 3), dtype=np.float32),
        "layers": np.array([0, 1, 3], dtype=np.int64),
        "tokens": ("<bos>", "the", "cat"),
        "token_ids": np.array([2, 10, 11], dtype=np.int64),
        "method": "integrated_gradients",
        "baseline": "zero",
        "target": "log p('is') after token 2",
        "target_position": 2,
        "target_token_ids": (5,),
        "target_probability": 0.5,
        "f_x": 1.5,
        "f_baseline": -0.5,  # gap 2.0
        "convergence_delta": None if delta is None else np.array(delta, dtype=np.float32),
        "n_steps": 64,
        "integration": "gausslegendre",
    }
    fields.update(overrides)
    return Saliency(**fields)  # type: ignore[arg-type]


def test_the_tolerance_is_five_percent_of_the_gap_at_every_row() -> None:
    assert CONVERGENCE_TOLERANCE == 0.05
    assert issubclass(ConvergenceWarning, UserWarning)
    # exactly 5% (0.125 of a gap of 2.5, both exact in binary) is converged
    at_limit = _saliency([0.125, -0.125, 0.0], f_x=2.0)
    assert at_limit.relative_convergence_delta.tolist() == [0.05, 0.05, 0.0]
    assert at_limit.convergence_warning == ""
    # a hair more, at the deepest row only, is not
    deep = _saliency([0.0, 0.0, -0.1002])
    assert "did not converge at after L2:" in deep.convergence_warning  # site 3 = after L2


def test_the_message_names_the_failing_rows_the_worst_error_and_what_to_change() -> None:
    message = _saliency([1.96, -0.3, 1e-6]).convergence_warning
    assert message.startswith("integrated gradients did not converge at emb, after L0:")
    assert "is 98% of |f(x) − f(baseline)| (tolerance 5%)" in message
    assert "n_steps=256, now 64" in message
    assert "baseline='pad', now 'zero'" in message
    assert "integration='adaptive', now 'gausslegendre'" in message


def test_advice_leaves_out_what_is_already_in_use() -> None:
    message = _saliency(
        [0.5, 0.0, 0.0], baseline="pad", integration="adaptive", n_steps=100
    ).convergence_warning
    assert "n_steps=400, now 100" in message
    assert "baseline=" not in message and "integration=" not in message


def test_a_zero_gap_is_converged_only_with_a_zero_delta() -> None:
    same = {"f_x": 0.25, "f_baseline": 0.25}
    assert _saliency([0.0, 0.0, 0.0], **same).convergence_warning == ""
    unbounded = _saliency([0.0, 1e-3, 0.0], **same)
    assert unbounded.relative_convergence_delta.tolist() == [0.0, np.inf, 0.0]
    assert "unbounded (f(x) = f(baseline))" in unbounded.convergence_warning


def test_methods_without_a_completeness_error_never_warn() -> None:
    gradient = _saliency(None, method="gradient", baseline="", f_baseline=None, n_steps=None)
    assert gradient.relative_convergence_delta is None
    assert gradient.convergence_warning == ""


def test_the_integration_rule_is_recorded_and_older_files_still_load(tmp_path) -> None:
    original = _saliency([0.0, 0.0, 0.0])
    original.save(tmp_path / "s.safetensors")
    assert Saliency.load(tmp_path / "s.safetensors").integration == "gausslegendre"
    older = {k: v for k, v in original.metadata().items() if k != "integration"}
    assert Saliency.from_arrays(original.to_arrays(), older).integration is None
    with pytest.raises(ValueError, match="integration must be a rule name"):
        _saliency([0.0, 0.0, 0.0], integration="")
