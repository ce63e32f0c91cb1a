"""Attribution pieces that need no model: registry, quadrature, targets, ``Saliency`` records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmasos_widgets.attribution import (
    METHODS,
    Contrast,
    NextToken,
    Predicted,
    Saliency,
    as_target,
    available_methods,
    get_method,
    register_method,
)
from llmasos_widgets.attribution._methods import (
    adaptive_panels,
    composite_gausslegendre,
    quadrature,
)
from llmasos_widgets.targets import resolve_position


def test_the_four_methods_are_registered_under_their_names() -> None:
    assert available_methods() == [
        "gradient",
        "input_x_gradient",
        "integrated_gradients",
        "occlusion",
    ]
    for name, cls in METHODS.items():
        assert cls.name == name
        assert get_method(name).name == name


def test_unknown_method_suggests_the_close_name_and_lists_all() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'integrated_gradients'\?") as error:
        get_method("integrated_gradient")
    assert "occlusion" in str(error.value)


def test_registry_is_read_only_and_refuses_a_clashing_name() -> None:
    with pytest.raises(TypeError):
        METHODS["x"] = object  # type: ignore[index]
    clash = type("Clash", (get_method("gradient").__class__,), {"name": "gradient"})
    with pytest.raises(ValueError, match="already registered"):
        register_method(clash)


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_middle", "riemann_trapezoid"])
def test_quadrature_integrates_a_cubic_on_0_1(rule: str) -> None:
    alphas, weights = quadrature(rule, 50)
    assert math.isclose(weights.sum(), 1.0, rel_tol=1e-12)
    integral = float((weights * alphas**3).sum())
    tolerance = 1e-12 if rule == "gausslegendre" else 1e-3
    assert abs(integral - 0.25) < tolerance


def test_adaptive_panels_follow_a_jump_and_integrate_exactly() -> None:
    grid = np.linspace(0.0, 1.0, 51)
    values = np.where(grid < 0.5, 0.0, 8.0)  # f jumps in the cell 0.48..0.5
    edges = adaptive_panels(grid, values, 25)
    assert edges[0] == 0.0 and edges[-1] == 1.0 and np.all(np.diff(edges) >= 0)
    inside = np.sum((edges > 0.48) & (edges < 0.5))
    assert inside >= 10  # half the panels go to the jump
    alphas, weights = composite_gausslegendre(edges, 50)
    assert len(alphas) == 50 and math.isclose(weights.sum(), 1.0, rel_tol=1e-12)
    assert abs(float((weights * alphas**3).sum()) - 0.25) < 1e-12
    with pytest.raises(ValueError, match="no fixed nodes"):
        quadrature("adaptive", 10)


def test_quadrature_rejects_bad_rules_and_steps() -> None:
    with pytest.raises(ValueError, match="did you mean 'gausslegendre'"):
        quadrature("gauss_legendre", 10)
    with pytest.raises(ValueError, match="positive int"):
        quadrature("gausslegendre", 0)


def test_target_short_forms() -> None:
    assert as_target(None) == Predicted()
    assert as_target(" are") == NextToken(" are")
    assert as_target(7) == NextToken(7)
    assert as_target((" are", " is")) == Contrast(" are", " is")
    with pytest.raises(TypeError, match="target must be"):
        as_target([" are"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="did you mean 'logit'"):
        NextToken("x", score="logits")  # type: ignore[arg-type]


def test_position_is_checked_and_negative_counts_from_the_end() -> None:
    assert resolve_position(-1, 5) == 4
    assert resolve_position(0, 5) == 0
    with pytest.raises(ValueError, match=r"position 5 is out of range for 5 tokens"):
        resolve_position(5, 5)
    with pytest.raises(ValueError, match="out of range"):
        resolve_position(-6, 5)


def _saliency(**overrides: object) -> Saliency:
    fields: dict[str, object] = {
        "scores": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
        "layers": np.array([0, 2], dtype=np.int64),
        "tokens": ("<bos>", "the", "cat"),
        "token_ids": np.array([2, 10, 11], dtype=np.int64),
        "method": "integrated_gradients",
        "baseline": "zero",
        "target": "log p('is') after token 2",
        "target_position": 2,
        "target_token_ids": (5,),
        "target_probability": 0.123456789,
        "f_x": -2.0916,
        "f_baseline": -3.5,
        "convergence_delta": np.array([1e-7, -2e-7], dtype=np.float32),
        "n_steps": 50,
    }
    fields.update(overrides)
    return Saliency(**fields)  # type: ignore[arg-type]


def test_saliency_round_trips_exactly(tmp_path) -> None:
    original = _saliency()
    original.save(tmp_path / "s.safetensors")
    loaded = Saliency.load(tmp_path / "s.safetensors")
    for name in ("scores", "layers", "token_ids", "convergence_delta"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
        assert getattr(loaded, name).dtype == getattr(original, name).dtype
    assert loaded.metadata() == original.metadata()
    again = Saliency.from_arrays(original.to_arrays(), original.metadata())
    assert again.target_probability == original.target_probability
    np.testing.assert_array_equal(again.at(2), original.scores[1])


def test_saliency_without_a_baseline_round_trips(tmp_path) -> None:
    original = _saliency(method="gradient", baseline="", f_baseline=None, convergence_delta=None)
    original.save(tmp_path / "g.safetensors")
    loaded = Saliency.load(tmp_path / "g.safetensors")
    assert loaded.convergence_delta is None and loaded.f_baseline is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scores": np.zeros((2, 3), dtype=np.float64)}, "scores must be float32"),
        ({"scores": np.zeros((2, 4), dtype=np.float32)}, "4 token columns"),
        ({"layers": np.array([0], dtype=np.int64)}, "layers has shape"),
        ({"layers": np.array([1, 1], dtype=np.int64)}, "distinct"),
        ({"token_ids": np.array([2, 10, 11], dtype=np.int32)}, "token_ids must be int64"),
        ({"target_position": 3}, "target_position 3"),
        ({"target_token_ids": ()}, "one token id"),
        ({"convergence_delta": np.zeros(3, dtype=np.float32)}, "convergence_delta has shape"),
        ({"method": ""}, "method"),
        ({"target_probability": 1.5}, "not in"),
    ],
)
def test_saliency_validates_with_value_error(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _saliency(**overrides)


def test_saliency_is_frozen_including_its_arrays() -> None:
    saliency = _saliency()
    with pytest.raises(AttributeError):
        saliency.method = "gradient"  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        saliency.scores[0, 0] = 1.0
    with pytest.raises(KeyError, match="site 1 was not computed"):
        saliency.at(1)


def test_load_refuses_a_foreign_record() -> None:
    metadata = _saliency().metadata() | {"format": "something-else"}
    with pytest.raises(ValueError, match="not a saliency record"):
        Saliency.from_arrays(_saliency().to_arrays(), metadata)
