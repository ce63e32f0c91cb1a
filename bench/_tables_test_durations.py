"""Renderers of the test suite's times (bench/RESULTS.md, README.md) for bench/tables.py, from
the JSON that bench/test_durations.py writes after a ``scripts/test.sh`` run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _tables_format import Sources, load_sentence, run_line, table

COMMANDS = {"fast": "bash scripts/test.sh --fast", "whole": "bash scripts/test.sh"}


def minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s" if whole >= 60 else f"{whole} s"


def _outcome(result: dict[str, Any]) -> str:
    counts = f"{result['passed']} passed, {result['skipped']} skipped"
    if result["exit_status"] == 0:
        return f"passed ({counts})"
    return f"**failed** (exit status {result['exit_status']}; {result['failed']} failed, {counts})"


def _not_measured(tier: str) -> str:
    return (
        f"Not measured on this tree yet: run `{COMMANDS[tier]}`, then "
        f"`python bench/test_durations.py {tier}` and `python bench/tables.py`."
    )


def durations(tier: str) -> Callable[[Sources], str]:
    def render(sources: Sources) -> str:
        name = f"test_durations_{tier}"
        if not sources.has(name):
            return _not_measured(tier)
        result = sources.result(name)
        stages = ", ".join(f"{stage} {minutes(s)}" for stage, s in result["stages_s"].items())
        top = result["slowest"]
        rows = [
            [str(rank), f"`{row['test']}`", f"{row['seconds']:.1f}", row["outcome"]]
            for rank, row in enumerate(top, 1)
        ]
        share = sum(row["seconds"] for row in top) / result["tests_s"] if result["tests_s"] else 0
        return "\n".join(
            [
                run_line(result, f"{COMMANDS[tier]}; python bench/test_durations.py {tier}"),
                "",
                f"Wall time **{minutes(result['wall_s'])}**, {_outcome(result)}. By stage: "
                f"{stages}. pytest's own time: {minutes(result['pytest_s'])}; the "
                f"{len(top)} slowest tests below take {share:.0%} of the tests' "
                f"{minutes(result['tests_s'])} (setup, call and teardown: a module's shared "
                "fixture counts in the first test that asks for it).",
                "",
                table(["#", "test", "s", "outcome"], rows, "rlrl"),
            ]
        )

    return render


def fast_tier_time(sources: Sources) -> str:
    """The README's sentence on the fast tier."""
    if not sources.has("test_durations_fast"):
        return _not_measured("fast")
    result = sources.result("test_durations_fast")
    env = result["environment"]
    return (
        f"Measured on {env['date_utc'][:10]} on {env['cpu_count']} cores of an {env['cpu']}, "
        f"the environment already set up: the fast tier took {minutes(result['wall_s'])} of "
        f"wall time, `setup.sh` included, and {_outcome(result)}. {load_sentence(env)} "
        "([bench/RESULTS.md](bench/RESULTS.md#test-suite) lists its slowest tests.)"
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {
    "test-durations-fast": durations("fast"),
    "test-durations-whole": durations("whole"),
    "fast-tier-time": fast_tier_time,
}
