"""Table of ``bench/bench_graphs.py``: seconds and peak memory of ``attribution_graph`` on
the CPU (``graphs-cost`` region of docs/graphs.md)."""

from __future__ import annotations

from collections.abc import Callable

from _tables_format import Sources, run_line, table


def _seconds(x: float) -> str:
    return f"{x:.1f} s" if x < 100 else f"{x:.0f} s"


def graphs_cost(sources: Sources) -> str:
    result = sources.result("bench_graphs")
    rows = []
    for r in result["rows"]:
        phases = r["phases_s"]
        features = f"{r['feature_nodes']} of {r['active_features']}"
        rows.append(
            [
                r["case"],
                f"{r['hidden']} x {r['layers']}",
                str(r["tokens"]),
                f"{r['width']} (k {r['k']})",
                features,
                _seconds(r["wall_s"]),
                _seconds(r["cpu_s"]),
                f"{_seconds(phases['forward'])} / {_seconds(phases['rows'])} / "
                f"{_seconds(phases['pruning'])}",
                f"{r['peak_above_before_bytes'] / 2**30:.2f}",
                f"{r['resident_before_bytes'] / 2**30:.1f}",
            ]
        )
    return "\n".join(
        [
            run_line(result, "python bench/bench_graphs.py --results"),
            "",
            "One graph per case in a fresh process, float32 on the CPU, random TopK "
            "transcoders (the number of active features, not their training, sets the cost). "
            "Phases: the real forward pass with features and error vectors / the rows of "
            "direct effects (transpose passes) / influence and pruning. Peak: the resident "
            "high-water mark above what the process held before the call (model and "
            "transcoders excluded, graph arrays included); resident before: the model, the "
            "transcoders and the interpreter.",
            "",
            table(
                [
                    "model",
                    "hidden x layers",
                    "T",
                    "transcoder width",
                    "feature nodes",
                    "wall",
                    "CPU",
                    "forward / rows / pruning",
                    "peak GiB",
                    "resident before GiB",
                ],
                rows,
                "llrlrrrlrr",
            ),
        ]
    )


RENDERERS: dict[str, Callable[[Sources], str]] = {"graphs-cost": graphs_cost}
