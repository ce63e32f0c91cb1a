"""counterfactuals' templates and result, without a model: slots, zipped fills, labels,
escaped braces, and the result's own checks."""

from __future__ import annotations

import numpy as np
import pytest

from llmasos_widgets.interventions import CounterfactualResult
from llmasos_widgets.interventions._counterfactuals import _fill_table


def test_one_slot_takes_a_list_and_several_slots_are_zipped() -> None:
    slots, labels, prompts = _fill_table("The {job} said", ["nurse", "pilot"])
    assert (slots, labels, prompts) == (
        ["job"],
        ["nurse", "pilot"],
        ["The nurse said", "The pilot said"],
    )
    slots, labels, prompts = _fill_table(
        "{name} the {job} ({{note}})", {"job": ["nurse", "pilot"], "name": ["Ann", "Bob"]}
    )
    assert slots == ["name", "job"]  # in template order
    assert labels == ["Ann | nurse", "Bob | pilot"]
    assert prompts == ["Ann the nurse ({note})", "Bob the pilot ({note})"]  # {{ is a brace
    # a slot used twice is filled twice with the same value
    assert _fill_table("{w} and {w}", ["a"])[2] == ["a and a"]


@pytest.mark.parametrize(
    ("template", "fills", "error", "match"),
    [
        ("no slot here", ["a"], ValueError, "has no slot"),
        ("{0} said", ["a"], ValueError, "plain name"),
        ("{job.title} said", ["a"], ValueError, "plain name"),
        ("{job", ["a"], ValueError, "not a format string"),
        ("{a} {b}", ["x"], TypeError, "must be a dict"),
        ("{job}", "nurse", TypeError, "must be a dict"),
        ("{job}", {"job": "nurse"}, TypeError, "list of str"),
        ("{job}", {"job": [1]}, TypeError, "must hold str"),
        ("{job}", {"job": ["a"], "extra": ["b"]}, ValueError, r"no slot for \['extra'\]"),
    ],
)
def test_bad_templates_and_fills_say_what_to_do(template, fills, error, match) -> None:
    with pytest.raises(error, match=match):
        _fill_table(template, fills)


def result(**changes) -> CounterfactualResult:
    fields = dict(
        template="{x}", slots=("x",), fills=("a", "b"), prompts=("a", "b"),
        values=np.array([1.0, -1.0], np.float32), positions=np.array([0, 0]),
        n_tokens=np.array([1, 1]), target="logit('a') - logit('b')", score="logit difference",
    )  # fmt: skip
    fields.update(changes)
    return CounterfactualResult(**fields)


def test_the_result_checks_itself_and_its_spread() -> None:
    ok = result(reference="b")
    assert ok.spread == {"mean": 0.0, "std": 1.0, "min": -1.0, "max": 1.0, "range": 2.0}
    assert ok.ranked() == [("a", 1.0), ("b", -1.0)]
    assert ok.differences.tolist() == [2.0, 0.0]
    with pytest.raises(ValueError, match="not log-probabilities"):
        _ = ok.probabilities
    with pytest.raises(ValueError, match="pass reference="):
        _ = result().differences
    with pytest.raises(KeyError, match="not a fill"):
        ok.value("c")
    with pytest.raises(ValueError, match="values has 1 entries for 2 fills"):
        result(values=np.array([1.0], np.float32))
    with pytest.raises(ValueError, match="unique"):
        result(fills=("a", "a"))
    with pytest.raises(ValueError, match="not one of the fills"):
        result(reference="c")
