"""Where the test suite's time goes: the slowest tests of a ``scripts/test.sh`` run.

``scripts/test.sh`` writes pytest's junit XML (``test-output/junit-<tier>.xml``; the whole
suite's run on the oldest admitted transformers also ``junit-oldest.xml``) and a run record
(``test-output/run-<tier>.json``: wall time by stage, load average at start and end). This
turns them into ``bench/results/test_durations_<tier>.json``, which ``bench/tables.py``
publishes in bench/RESULTS.md (and the fast tier's time in README.md)::

    bash scripts/test.sh            # or: bash scripts/test.sh --fast
    python bench/test_durations.py whole   # or: fast
    python bench/tables.py

A test's time is its setup, call and teardown together (junit's default), so a module-scoped
fixture is charged to the first test that asks for it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _results import RESULTS, environment  # noqa: E402

OUTPUT = ROOT / "test-output"
TOP = 20
COMMANDS = {"fast": "bash scripts/test.sh --fast", "whole": "bash scripts/test.sh"}


def node_id(classname: str, name: str) -> str:
    """pytest's id of a test (``tests/unit/test_x.py::Class::name``,
    ``notebooks/x.ipynb::Cell 3``) from junit's dotted ``classname``: the file's path, its
    ``.py`` dropped, then any class."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        module = "/".join(parts[:end]) + ".py"  # tests.unit.test_x
        other = "/".join(parts[: end - 1]) + "." + parts[end - 1]  # notebooks.x.ipynb
        for path in (module, other):
            if (ROOT / path).is_file():
                return "::".join([path, *parts[end:], name])
    return "::".join([classname, name])


def test_times(junit: Path, prefix: str = "") -> list[dict[str, Any]]:
    """``[{"test", "seconds", "outcome"}]`` of every test case in a junit XML file."""
    rows = []
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        test = node_id(case.get("classname", ""), case.get("name", ""))
        outcome = "passed"
        for child in case:
            if child.tag in {"failure", "error"}:
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "skipped"
        rows.append(
            {"test": prefix + test, "seconds": float(case.get("time", 0)), "outcome": outcome}
        )
    return rows


def summary(junit: Path) -> dict[str, Any]:
    """Counts and pytest's own time, from the junit XML's test suite element."""
    suite = ElementTree.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None, f"{junit} holds no <testsuite>"
    count = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    return {
        "pytest_s": round(float(suite.get("time", 0)), 1),
        "timestamp": suite.get("timestamp"),
        "passed": count["tests"] - count["failures"] - count["errors"] - count["skipped"],
        "failed": count["failures"] + count["errors"],
        "skipped": count["skipped"],
    }


def started_utc(timestamp: str) -> str:
    """pytest's junit timestamp (local time, with or without its offset) in UTC."""
    started = datetime.datetime.fromisoformat(timestamp).astimezone(datetime.timezone.utc)
    return started.isoformat(timespec="seconds")


def durations(tier: str, output: Path = OUTPUT) -> dict[str, Any]:
    """The results JSON of one tier's run, read from ``output``."""
    junit = output / f"junit-{tier}.xml"
    run_record = output / f"run-{tier}.json"
    for path in (junit, run_record):
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run `{COMMANDS[tier]}` first")
    run = json.loads(run_record.read_text())
    if run["pytest_args"]:
        raise SystemExit(
            f"{run_record}: the run narrowed pytest ({run['pytest_args']}); rerun plain"
        )
    tests = test_times(junit)
    oldest = output / "junit-oldest.xml"
    if tier == "whole" and "oldest_transformers" in run["stages_s"]:
        tests += test_times(oldest, prefix="[oldest transformers] ")
    tests.sort(key=lambda row: -row["seconds"])
    # the machine of this run; its date and load are the test run's, not this script's
    machine = environment()
    machine.update(
        date_utc=started_utc(summary(junit)["timestamp"]),
        load_average_start=run["load_average_start"],
        load_average_end=run["load_average_end"],
    )
    return {
        "benchmark": f"test_durations_{tier}",
        "environment": machine,
        "config": {"command": COMMANDS[tier], "tier": tier},
        "exit_status": run["exit_status"],
        "wall_s": run["wall_s"],
        "stages_s": run["stages_s"],
        **summary(junit),
        "tests_s": round(sum(row["seconds"] for row in tests), 1),
        "slowest": [{**row, "seconds": round(row["seconds"], 1)} for row in tests[:TOP]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tier", choices=sorted(COMMANDS), help="the run of scripts/test.sh to read")
    parser.add_argument(
        "--output", type=Path, default=OUTPUT, help="where that run wrote its files"
    )
    args = parser.parse_args(argv)
    result = durations(args.tier, args.output)
    path = RESULTS / f"{result['benchmark']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"wrote {path.relative_to(ROOT)}: {result['wall_s']} s wall, exit {result['exit_status']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
