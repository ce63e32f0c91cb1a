"""``bench/test_durations.py``: the slowest tests of a ``scripts/test.sh`` run, read from the
junit XML and the run record that the script writes to ``test-output/``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="1" skipped="1"
 tests="4" time="12.5" timestamp="2026-12-07T05:19:48.068358+00:00" hostname="vm">
<testcase classname="tests.unit.test_tables" name="test_a" time="0.5" />
<testcase classname="tests.integration.test_cli" name="test_b[x.y]" time="7.25">
<failure /></testcase>
<testcase classname="notebooks.quickstart.ipynb" name="Cell 0" time="3.0" />
<testcase classname="tests.unit.test_tables" name="test_c" time="0.01"><skipped /></testcase>
</testsuite></testsuites>
"""


@pytest.fixture(scope="module")
def durations():
    spec = importlib.util.spec_from_file_location(
        "test_durations", ROOT / "bench/test_durations.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_run_becomes_its_slowest_tests_with_their_ids(durations, tmp_path: Path) -> None:
    (tmp_path / "junit-fast.xml").write_text(JUNIT)
    record = {
        "tier": "fast",
        "pytest_args": [],
        "exit_status": 1,
        "wall_s": 20,
        "stages_s": {"setup": 1, "pytest": 19},
        "load_average_start": [0.5, 0.4, 0.3],
        "load_average_end": [1.5, 0.6, 0.4],
    }
    (tmp_path / "run-fast.json").write_text(json.dumps(record))
    result = durations.durations("fast", tmp_path)
    assert [(row["test"], row["seconds"], row["outcome"]) for row in result["slowest"]] == [
        ("tests/integration/test_cli.py::test_b[x.y]", 7.2, "failed"),
        ("notebooks/quickstart.ipynb::Cell 0", 3.0, "passed"),
        ("tests/unit/test_tables.py::test_a", 0.5, "passed"),
        ("tests/unit/test_tables.py::test_c", 0.0, "skipped"),
    ]
    assert (result["passed"], result["failed"], result["skipped"]) == (2, 1, 1)
    assert (result["wall_s"], result["pytest_s"], result["exit_status"]) == (20, 12.5, 1)
    assert result["environment"]["date_utc"] == "2026-12-07T05:19:48+00:00"
    assert result["environment"]["load_average_end"] == [1.5, 0.6, 0.4]


def test_a_narrowed_run_is_refused(durations, tmp_path: Path) -> None:
    (tmp_path / "junit-whole.xml").write_text(JUNIT)
    record = {"pytest_args": ["-k", "cli"], "stages_s": {}}
    (tmp_path / "run-whole.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="narrowed pytest"):
        durations.durations("whole", tmp_path)
