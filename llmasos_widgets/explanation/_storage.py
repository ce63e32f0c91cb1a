"""Explanation files: one safetensors file, arrays as tensors and everything else as JSON in
its metadata under a format tag. Dtypes are kept exactly (no silent casts)."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file

from llmasos_widgets._readable_tokens import TokenStyle
from llmasos_widgets.explanation._explanation import (
    FORMAT,
    FORMAT_VERSION,
    Explanation,
    ExplanationFileError,
)
from llmasos_widgets.explanation._lens import LensRows
from llmasos_widgets.interventions import from_record, to_record
from llmasos_widgets.tracing import AttentionSpec

if TYPE_CHECKING:
    from llmasos_widgets.attribution import Saliency


def save_explanation(explanation: Explanation, path: Path) -> Path:
    tensors: dict[str, torch.Tensor] = {
        "token_ids": _tensor(explanation.token_ids),
        "top_token_ids": _tensor(explanation.top_token_ids),
        "top_probs": _tensor(explanation.top_probs),
        "lens_token_ids": _tensor(explanation.lens_token_ids),
        "lens_probs": _tensor(explanation.lens_probs),
    }
    for layer, (q, k) in enumerate(zip(explanation.queries, explanation.keys, strict=True)):
        tensors[f"queries.{layer}"] = q.detach().cpu().contiguous()
        tensors[f"keys.{layer}"] = k.detach().cpu().contiguous()
    # each query row's log-sum-exp, when every row of a layer is known (explain's exact
    # summaries fill them): a loaded file's first pooled view then needs one pass, not two
    normalisers = explanation.row_normalisers
    for layer, known in normalisers.known.items():
        if bool(known.all()):
            tensors[f"normalisers.{layer}"] = normalisers.lse[layer].detach().cpu().contiguous()
    for name, summary in explanation.head_summaries.items():
        tensors[f"summary.{name}"] = _tensor(summary)
    saliency_meta = None
    if explanation.saliency is not None:
        for name, array in explanation.saliency.to_arrays().items():
            tensors[f"saliency.{name}"] = _tensor(array)
        saliency_meta = explanation.saliency.metadata()
    generation = explanation.generation
    for name, array in ({} if generation is None else generation.to_arrays()).items():
        tensors[f"generation.{name}"] = _tensor(array)
    sinks = explanation.attention_sinks
    for name, array in ({} if sinks is None else sinks.to_arrays()).items():
        tensors[f"sinks.{name}"] = _tensor(array)
    causal = []  # each result's arrays as "causal.<index>.<field>", the rest in its record
    for index, result in enumerate(explanation.causal_results):
        arrays, record = to_record(result)
        tensors.update({f"causal.{index}.{name}": _tensor(a) for name, a in arrays.items()})
        causal.append(record)
    for index, features in enumerate(explanation.features):
        tensors.update(
            {f"features.{index}.{n}": _tensor(a) for n, a in features.to_arrays().items()}
        )
    header = {
        "model_name": explanation.model_name,
        "tokens": list(explanation.tokens),
        "top_tokens": [list(row) for row in explanation.top_tokens],
        "lens_tokens": [list(row) for row in explanation.lens_tokens],
        "specs": [dataclasses.asdict(spec) for spec in explanation.specs],
        "summaries": list(explanation.head_summaries),
        "saliency": saliency_meta,
        "generation": None if generation is None else generation.metadata(),
        "token_style": explanation.token_style.to_json(),
        "metadata": dict(explanation.metadata),
        "summary_notes": dict(explanation.summary_notes),
        "messages": [message.to_json() for message in explanation.messages],
        "attention_sinks": None if sinks is None else sinks.metadata(),
        "causal_results": causal,
        "features": [record.to_json() for record in explanation.features],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # beside it first, then moved into place: a failed write leaves the old file (which a
    # keep="disk" explanation may be mapping) as it was
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        save_file(
            tensors,
            str(temporary),
            metadata={"format": FORMAT, "version": FORMAT_VERSION, "header": json.dumps(header)},
        )
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def load_explanation(path: Path, *, device: torch.device, keep: str | None = None) -> Explanation:
    """``keep="disk"`` maps queries/keys from the file itself (no copy in memory)."""
    if not path.is_file():
        raise FileNotFoundError(f"no explanation file at {str(path)!r}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as file:
            meta = file.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ExplanationFileError(
                    f"{str(path)!r} is a safetensors file but not an explanation "
                    f"(format tag {meta.get('format')!r}, expected {FORMAT!r})"
                )
            if meta.get("version") != FORMAT_VERSION:
                raise ExplanationFileError(
                    f"{str(path)!r} has explanation format version {meta.get('version')!r}; "
                    f"this llmasos-widgets reads version {FORMAT_VERSION}"
                )
            names = list(file.keys())
            mapped = [n for n in names if n.startswith(("queries.", "keys."))]
            on_disk = keep == "disk"
            tensors = {
                name: file.get_tensor(name) for name in names if not on_disk or name not in mapped
            }
        if on_disk:
            from llmasos_widgets.explanation._disk import map_safetensors

            tensors.update(map_safetensors(path, mapped))
        elif keep == "cpu":  # in memory: safetensors' own tensors may be views of the file
            tensors.update({name: tensors[name].clone() for name in mapped})
        header = json.loads(meta["header"])
        explanation = _build(header, tensors, device)
        for name, lse in tensors.items():  # optional: absent in older files
            if name.startswith("normalisers."):
                layer = int(name.removeprefix("normalisers."))
                explanation.row_normalisers.lse[layer] = lse.to(device)
                explanation.row_normalisers.known[layer] = torch.ones(
                    lse.shape, dtype=torch.bool, device=device
                )
        return explanation
    except ExplanationFileError:
        raise
    except (
        SafetensorError,
        OSError,
        json.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
    ) as error:
        raise ExplanationFileError(
            f"{str(path)!r} is not a readable explanation file (corrupt, truncated or of "
            f"another format): {error}"
        ) from error


def _build(
    header: dict[str, Any], tensors: dict[str, torch.Tensor], device: torch.device
) -> Explanation:
    n_layers = len(header["specs"])
    saliency: Saliency | None = None
    if header["saliency"] is not None:
        from llmasos_widgets.attribution import Saliency

        arrays = {
            name.removeprefix("saliency."): value.numpy()
            for name, value in tensors.items()
            if name.startswith("saliency.")
        }
        saliency = Saliency.from_arrays(arrays, header["saliency"])
    return Explanation(
        model_name=header["model_name"],
        tokens=tuple(header["tokens"]),
        token_ids=tensors["token_ids"].numpy(),
        queries=tuple(tensors[f"queries.{i}"].to(device) for i in range(n_layers)),
        keys=tuple(tensors[f"keys.{i}"].to(device) for i in range(n_layers)),
        specs=tuple(AttentionSpec(**spec) for spec in header["specs"]),
        head_summaries={name: tensors[f"summary.{name}"].numpy() for name in header["summaries"]},
        top_token_ids=tensors["top_token_ids"].numpy(),
        top_probs=tensors["top_probs"].numpy(),
        top_tokens=tuple(tuple(row) for row in header["top_tokens"]),
        logit_lens=LensRows.of_arrays(
            tensors["lens_token_ids"].numpy(),
            tensors["lens_probs"].numpy(),
            header["lens_tokens"],
        ),
        saliency=saliency,
        # files written before token styles were recorded show raw strings (plain)
        token_style=TokenStyle.from_json(header.get("token_style")),
        metadata=header["metadata"],
        summary_notes=header.get("summary_notes", {}),  # absent in older files
        generation=_generation(header.get("generation"), tensors),  # absent in older files
        messages=_messages(header.get("messages")),  # absent in older files
        # absent in older files: None, and find_attention_sinks() measures them from q/k
        attention_sinks=_sinks(header.get("attention_sinks"), tensors),
        causal_results=_causal(header.get("causal_results", []), tensors),  # absent in older
        features=_features(header.get("features", []), tensors),  # absent in older files
    )


def _under(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The tensors named ``prefix<name>``, as numpy arrays keyed by ``<name>``."""
    return {
        name.removeprefix(prefix): value.numpy()
        for name, value in tensors.items()
        if name.startswith(prefix)
    }


def _features(records: list[dict[str, Any]], tensors: dict[str, torch.Tensor]) -> tuple[Any, ...]:
    from llmasos_widgets.features import FeatureActivations

    return tuple(
        FeatureActivations.from_arrays(_under(f"features.{index}.", tensors), meta)
        for index, meta in enumerate(records)
    )


def _causal(records: list[dict[str, Any]], tensors: dict[str, torch.Tensor]) -> tuple[Any, ...]:
    return tuple(
        from_record(_under(f"causal.{index}.", tensors), record, where=f"causal result {index}")
        for index, record in enumerate(records)
    )


def _messages(meta: list[dict[str, Any]] | None) -> tuple[Any, ...]:
    from llmasos_widgets.explanation._chat import MessageSpan

    return tuple(MessageSpan.from_json(span) for span in meta or ())


def _sinks(meta: dict[str, Any] | None, tensors: dict[str, torch.Tensor]) -> Any:
    if meta is None:
        return None
    from llmasos_widgets.explanation._sinks import AttentionSinks

    arrays = {
        name.removeprefix("sinks."): value.numpy()
        for name, value in tensors.items()
        if name.startswith("sinks.")
    }
    return AttentionSinks.from_arrays(arrays, meta)


def _generation(meta: dict[str, Any] | None, tensors: dict[str, torch.Tensor]) -> Any:
    if meta is None:
        return None
    from llmasos_widgets.explanation._generation import Generation

    arrays = {
        name.removeprefix("generation."): value.numpy()
        for name, value in tensors.items()
        if name.startswith("generation.")
    }
    return Generation.from_arrays(arrays, meta)


def _tensor(array: np.ndarray) -> torch.Tensor:
    # a copy: arrays may be read-only views (e.g. of a loaded file), which torch refuses to wrap
    return torch.from_numpy(np.array(array, copy=True, order="C"))
