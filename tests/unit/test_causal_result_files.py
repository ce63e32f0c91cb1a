"""Causal result files without a model: every field back bitwise (arrays with their dtype,
tuples as tuples, the metadata's targets and numpy scalars as they were), and every bad file
refused with a ValueError that says what the file is."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from llmasos_widgets._readable_tokens import TokenStyle
from llmasos_widgets.interventions import (
    AttributionPatchingResult,
    LogitAttribution,
    PatchingResult,
    PathPatchingMap,
    PathPatchingResult,
)
from llmasos_widgets.targets import NextToken
from tests._causal_results import assert_same


def patching(**changes: Any) -> PatchingResult:
    values: dict[str, Any] = dict(
        clean_text="a <b>keys</b> x",
        corrupted_text="a key x",
        clean_tokens=("<bos>", "a", "<b>keys</b>", "x"),
        corrupted_tokens=("<bos>", "a", "key", "x"),
        target="logit('are') - logit('is') after token 3",
        target_position=3,
        clean_value=2.0,
        corrupted_value=-2.0000000000000004,  # a float JSON must keep to the last bit
        residual_values=np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4),
        head_values=None,
        n_layers=2,
        n_heads=2,
        forward_passes=2,
        metadata={"model": "m", "bound_target": (93, 92), "scale": np.float32(0.1)},
        token_style=TokenStyle(scheme="sentencepiece", special=frozenset({"<bos>"})),
    )
    values.update(changes)
    return PatchingResult(**values)


def estimate() -> AttributionPatchingResult:
    plain = patching()
    base = {spec.name: getattr(plain, spec.name) for spec in dataclasses.fields(plain)}
    base["metadata"] = {"estimate": True, "bound_target": NextToken(7, "logit")}
    base["head_values"] = np.array([[0.5, -1.0], [2.0, np.nan]], np.float32)
    base["head_node"] = "k"
    return AttributionPatchingResult(
        **base,
        method="AtP* (QK fix + GradDrop)",
        grad_drop_head_values=np.array([[0.25, 0.0], [1.5, 3.0]], np.float32),
    )


def path_result() -> PathPatchingResult:
    return PathPatchingResult(
        clean_text="a b", corrupted_text="a c", target="log p(' d')", senders=((0, 3), (0, 1)),
        receivers=((1, 2, "k"), (1, 0, "q")), clean_value=1.5, corrupted_value=-0.25,
        path_value=0.5, total_value=1.25,
    )  # fmt: skip


def path_map() -> PathPatchingMap:
    values = np.full((3, 2), np.nan, np.float32)
    values[2] = [0.25, 1.0]
    return PathPatchingMap(
        clean_text="a b", corrupted_text="a c", target="log p(' d')", senders=((1, 0),),
        which="v", clean_value=1.0, corrupted_value=0.0, total_value=0.75, values=values,
        n_layers=3, n_heads=2,
    )  # fmt: skip


def logit_attribution() -> LogitAttribution:
    rng = np.random.default_rng(0)
    n = 3
    return LogitAttribution(
        text="a b c", tokens=("<bos>", "a", "b"), target="logit(' c')", position=2,
        heads=rng.normal(size=(2, 2, n)).astype(np.float32),
        mlps=rng.normal(size=(2, n)).astype(np.float32),
        embeddings=rng.normal(size=n).astype(np.float32),
        attention_biases=np.zeros((2, n), np.float32), unembedding_bias=0.0,
        norm_scale=np.ones(n, np.float32), logits=rng.normal(size=n).astype(np.float32),
        n_layers=2, n_heads=2,
    )  # fmt: skip


MAKERS = [patching, estimate, path_result, path_map, logit_attribution]


@pytest.mark.parametrize("make", MAKERS, ids=lambda make: make.__name__)
def test_every_field_comes_back(make: Any, tmp_path: Path) -> None:
    result = make()
    path = result.save(tmp_path / "result.safetensors")
    loaded = type(result).load(path)
    assert_same(result, loaded)


def test_metadata_keeps_its_types(tmp_path: Path) -> None:
    loaded = PatchingResult.load(patching().save(tmp_path / "p.safetensors"))
    assert loaded.metadata["bound_target"] == (93, 92)
    assert isinstance(loaded.metadata["bound_target"], tuple)  # a target is a tuple, not a list
    assert type(loaded.metadata["scale"]) is np.float32
    assert loaded.token_style == TokenStyle(scheme="sentencepiece", special=frozenset({"<bos>"}))
    assert loaded.residual_values is not None and loaded.head_values is None  # None stays None
    atp = AttributionPatchingResult.load(estimate().save(tmp_path / "e.safetensors"))
    assert atp.metadata["bound_target"] == NextToken(7, "logit")
    assert atp.method == "AtP* (QK fix + GradDrop)" and atp.head_node == "k"


def test_a_loaded_estimate_says_its_model_is_not_attached(tmp_path: Path) -> None:
    loaded = AttributionPatchingResult.load(estimate().save(tmp_path / "e.safetensors"))
    with pytest.raises(RuntimeError, match=r"no model is attached.*verify\(k, model=model\)"):
        loaded.verify(3)


def test_the_wrong_kind_is_refused_by_name(tmp_path: Path) -> None:
    path_file = path_map().save(tmp_path / "map.safetensors")
    with pytest.raises(ValueError, match="holds a saved PathPatchingMap.*PathPatchingMap.load"):
        PatchingResult.load(path_file)
    plain = patching().save(tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="holds a saved PatchingResult"):
        AttributionPatchingResult.load(plain)
    # an estimate is a PatchingResult: the base class reads it as what it is
    loaded = PatchingResult.load(estimate().save(tmp_path / "e.safetensors"))
    assert isinstance(loaded, AttributionPatchingResult)
    foreign = tmp_path / "run.llmx"
    save_file({"x": np.zeros(1)}, str(foreign), metadata={"format": "llmasos-explanation"})
    with pytest.raises(ValueError, match="is an Explanation file.*not a saved LogitAttribution"):
        LogitAttribution.load(foreign)
    other = tmp_path / "weights.safetensors"
    save_file({"x": np.zeros(1)}, str(other))
    with pytest.raises(ValueError, match="format None"):
        PathPatchingResult.load(other)


def test_damaged_truncated_and_newer_files_are_refused(tmp_path: Path) -> None:
    good = logit_attribution().save(tmp_path / "good.safetensors")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) - 10])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00not a file at all" * 10)
    for path in (truncated, garbage):
        with pytest.raises(ValueError, match="not a readable causal result file"):
            LogitAttribution.load(path)
    with pytest.raises(FileNotFoundError):
        LogitAttribution.load(tmp_path / "missing.safetensors")
    arrays = {"heads": np.zeros((1, 1, 1), np.float32)}
    newer = tmp_path / "newer.safetensors"
    save_file(arrays, str(newer), metadata={"format": "llmasos-causal-result", "version": "2"})
    with pytest.raises(ValueError, match="newer llmasos-widgets.*version 2.*upgrade"):
        LogitAttribution.load(newer)
    # a record without an array it needs: damaged, not a result with a field left out
    record = {"kind": "LogitAttribution", "fields": {"text": "a"}}
    lacking = tmp_path / "lacking.safetensors"
    header = {"format": "llmasos-causal-result", "version": "1", "record": json.dumps(record)}
    save_file(arrays, str(lacking), metadata=header)
    with pytest.raises(ValueError, match="damaged causal result.*missing"):
        LogitAttribution.load(lacking)


def test_a_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "result.safetensors"
    bad = patching(metadata={"model": object()})
    with pytest.raises(
        TypeError, match=r"metadata\['model'\] is of type object, which cannot be saved"
    ):
        bad.save(path)
    assert list(tmp_path.iterdir()) == []  # no file, no temporary
    patching().save(path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        bad.save(path)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]
