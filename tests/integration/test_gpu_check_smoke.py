"""bench/gpu_check.py at CPU size, in a subprocess, as CI runs it: every part runs and reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# ~30-80 s on 2 shared cores; CI (scripts/test.sh) runs every marker, slow included
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    pytest.importorskip("accelerate")  # the device_map part; a test dependency
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "gpu_check.py"),
        "--device",
        "cpu",
        "--layers",
        "2",
        "--tokens",
        "64",
        "--reps",
        "2",
        "--out",
        str(out),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_every_part_ran_without_errors(report: dict) -> None:
    assert report["errors"] == {}
    for part in ("a_trace_overhead", "b_explain", "c_attribution", "d_split", "e_widget"):
        assert report[part], part


def test_trace_overhead_and_explain_memory_are_measured(report: dict) -> None:
    a = report["a_trace_overhead"]
    assert a["tokens"] == 64 and a["layers"] == 2 and len(a["times_s"]["traced"]) == 2
    assert a["traced_over_plain"] > 0 and a["qk_bytes"] > 0 and a["residual_bytes"] > 0
    b = report["b_explain"]
    assert b["tokens"] == 64 and b["weight_bytes"] > 0
    # q/k of 2 layers: 64 tokens x (4 query + 1 kv heads) x 64 dims x 2 bytes (bf16)
    assert b["qk_bytes"] == 2 * 64 * (4 + 1) * 64 * 2
    for step in b["steps"].values():
        assert step["seconds"] > 0 and step["peak_above_weights_bytes"] >= 0
    assert b["steps"]["plain forward"]["over_plain_forward"] == pytest.approx(1.0)


def test_attribution_runs_report_time_memory_and_completeness(report: dict) -> None:
    c = report["c_attribution"]
    assert set(c["runs"]) == {
        "gradient",
        "integrated_gradients, embeddings, 32 steps",
        "integrated_gradients, all sites, 32 steps",
    }
    assert c["runs"]["gradient"]["max_abs_convergence_delta"] is None
    ig = c["runs"]["integrated_gradients, embeddings, 32 steps"]
    assert ig["seconds"] > 0 and ig["max_abs_convergence_delta"] is not None


def test_split_model_gives_the_single_device_results(report: dict) -> None:
    d = report["d_split"]
    # on the CPU the second half is offloaded to disk: its weights sit on meta between calls
    assert d["devices"] == ["cpu", "disk"] and d["parameter_devices"] == ["cpu", "meta"]
    assert d["all_equal"] is True
    checks = d["checks"]
    assert checks["explain_top_ids_equal"] and checks["explain_lens_ids_equal"]
    assert checks["attribute_gradient"]["equal"] and checks["widget_state_keys_equal"]
    assert checks["attribute_input_x_gradient_layers_recomputed"]["equal"]
    assert checks["widget_summaries"]["max_abs_diff"] <= d["tolerance"]


def test_widget_first_state_bytes(report: dict) -> None:
    e = report["e_widget"]
    assert (e["layers"], e["heads"], e["tokens"]) == (2, 4, 64)
    assert e["data"] > 0 and e["bundle"] > 0 and e["total"] == e["data"] + e["bundle"]


def test_long_context_part_explains_renders_and_views_one_head(report: dict) -> None:
    f = report["f_long_context"]
    # CPU smoke: 2 layers, 256 tokens, captures in host memory; on a GPU: 32k, keep="gpu"
    assert f["tokens"] == 256 and f["layers"] == 2 and f["keep"] == "cpu"
    assert f["qk_bytes"] == 2 * 2 * 256 * 4 * 64 * 2  # layers x (q + k) x T x heads x d x bf16
    assert 0 < f["first_render"]["bytes"] < 1_000_000
    for step in ("explain", "first_render", "one_head_view", "detail_64x64"):
        assert f[step]["seconds"] > 0
