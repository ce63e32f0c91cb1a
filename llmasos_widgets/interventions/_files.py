"""Files of the causal results: one safetensors file per result, or records inside another
file (an Explanation's).

A result is a frozen dataclass; its numpy fields become tensors (dtype kept exactly) and every
other init field goes into one JSON header, tagged where JSON alone would lose the type
(tuples, numpy scalars, :class:`TokenStyle`, targets such as ``metadata["bound_target"]``).
A ``None`` array is absent from the tensors and ``null`` in the header, so a missing array is
told apart from a damaged file. Fields starting with ``_`` (a live model reference) are not
saved.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from llmasos_widgets._readable_tokens import TokenStyle
from llmasos_widgets.targets import Contrast, NextToken, Predicted

FORMAT = "llmasos-causal-result"
VERSION = 1
_OTHER_FORMATS = {  # what a foreign file is, so the error can say which loader reads it
    "llmasos-explanation": "an Explanation file (read it with Explanation.load)",
    "llmasos-probe-result": "a ProbeResult file (read it with ProbeResult.load)",
}
_TARGETS = {cls.__name__: cls for cls in (NextToken, Predicted, Contrast)}

R = TypeVar("R", bound="SavedResult")
K = TypeVar("K")


class SavedResult:
    """``save``/``load`` for the frozen result dataclasses of this package."""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write one safetensors file (arrays bitwise, everything else as JSON); returns the
        path. Written to a temporary file beside it first: a failed save leaves nothing."""
        arrays, record = to_record(self)
        header = {"format": FORMAT, "version": str(VERSION), "record": json.dumps(record)}
        return write_atomically(Path(path), arrays, header)

    @classmethod
    def load(cls: type[R], path: str | os.PathLike[str]) -> R:
        """Read a file written by :meth:`save`; ValueError for a file of another kind, a
        damaged one or one written by a newer version."""
        path = Path(path)
        arrays, header = _read(path)
        found = header.get("format")
        if found != FORMAT:
            what = _OTHER_FORMATS.get(str(found), f"a safetensors file of format {found!r}")
            raise ValueError(f"{str(path)!r} is {what}, not a saved {cls.__name__}")
        _check_version(header.get("version"), path)
        try:
            record = json.loads(header["record"])
            kind = record["kind"]
        except (KeyError, TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"{str(path)!r} is a damaged {cls.__name__} file: {error}") from error
        kind_class = _KINDS.get(kind)
        if kind_class is None or not issubclass(kind_class, cls):
            raise ValueError(
                f"{str(path)!r} holds a saved {kind}, which {cls.__name__}.load does not "
                f"read; read it with {kind}.load"
            )
        result = from_record(arrays, record, where=repr(str(path)))
        assert isinstance(result, cls)  # kind_class is cls or a subclass of it
        return result


_KINDS: dict[str, type] = {}


def saved_kind(cls: type[K]) -> type[K]:
    """Class decorator: ``cls`` can be written and read back by name (on its own when it is a
    :class:`SavedResult`, else inside one)."""
    _KINDS[cls.__name__] = cls
    return cls


def to_record(result: Any, prefix: str = "") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``result`` as ``(arrays by field name, JSON-serialisable record)``; TypeError names a
    value that cannot be saved (before anything is written). Results nested in a field (a
    counterfactual's pairs) are records of their own, their arrays named by their path
    under ``prefix``."""
    kind = type(result).__name__
    if _KINDS.get(kind) is not type(result) or not dataclasses.is_dataclass(result):
        raise TypeError(f"{kind} is not a result type this package can save")
    arrays: dict[str, np.ndarray] = {}
    fields: dict[str, Any] = {}
    for spec in dataclasses.fields(result):
        if not spec.init or spec.name.startswith("_"):
            continue
        value = getattr(result, spec.name)
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise TypeError(f"{kind}.{spec.name} is an object array; it cannot be saved")
            arrays[prefix + spec.name] = np.ascontiguousarray(value)
        else:
            fields[spec.name] = _encode(value, f"{kind}.{spec.name}", arrays, prefix + spec.name)
    return arrays, {"kind": kind, "fields": fields}


def from_record(
    arrays: dict[str, np.ndarray], record: dict[str, Any], *, where: str, prefix: str = ""
) -> Any:
    """Inverse of :func:`to_record`; ValueError (naming ``where``) for a damaged record."""
    try:
        kind = record["kind"]
        cls = _KINDS[kind]
        fields = record["fields"]
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            if not spec.init or spec.name.startswith("_"):
                continue
            if prefix + spec.name in arrays:
                values[spec.name] = arrays[prefix + spec.name]
            elif spec.name in fields:
                values[spec.name] = _decode(fields[spec.name], arrays, prefix + spec.name, where)
            else:
                raise ValueError(f"field {spec.name!r} of {kind} is missing")
        return cls(**values)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{where} holds a damaged causal result: {error}") from error


def _encode(value: Any, name: str, arrays: dict[str, np.ndarray], path: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):  # numpy scalars keep their dtype
        return {"$numpy": [value.dtype.str, value.item()]}
    if _KINDS.get(type(value).__name__) is type(value):  # a result inside a result
        nested, record = to_record(value, prefix=path + ".")
        arrays.update(nested)
        return {"$result": record}
    if isinstance(value, tuple):
        return {
            "$tuple": [
                _encode(item, f"{name}[{i}]", arrays, f"{path}.{i}") for i, item in enumerate(value)
            ]
        }
    if isinstance(value, list):
        return [
            _encode(item, f"{name}[{i}]", arrays, f"{path}.{i}") for i, item in enumerate(value)
        ]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError(f"{name} has a key that is not a str; it cannot be saved")
        return {
            "$dict": {
                key: _encode(item, f"{name}[{key!r}]", arrays, f"{path}.{key}")
                for key, item in value.items()
            }
        }
    if isinstance(value, TokenStyle):
        return {"$TokenStyle": value.to_json()}
    if isinstance(value, (NextToken, Predicted, Contrast)):  # e.g. metadata["bound_target"]
        return {"$target": [type(value).__name__, dataclasses.asdict(value)]}
    raise TypeError(
        f"{name} is of type {type(value).__name__}, which cannot be saved; use JSON values "
        "(str, int, float, bool, None, lists, tuples, dicts with str keys)"
    )


def _decode(value: Any, arrays: dict[str, np.ndarray], path: str, where: str) -> Any:
    if isinstance(value, list):
        return [_decode(item, arrays, f"{path}.{i}", where) for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    (tag, body), *rest = value.items()
    if rest:
        raise ValueError(f"not a tagged value: {sorted(value)}")
    if tag == "$numpy":
        return np.dtype(body[0]).type(body[1])
    if tag == "$result":
        return from_record(arrays, body, where=where, prefix=path + ".")
    if tag == "$tuple":
        return tuple(_decode(item, arrays, f"{path}.{i}", where) for i, item in enumerate(body))
    if tag == "$dict":
        return {key: _decode(item, arrays, f"{path}.{key}", where) for key, item in body.items()}
    if tag == "$TokenStyle":
        return TokenStyle.from_json(body)
    if tag == "$target":
        return _TARGETS[body[0]](**body[1])
    raise ValueError(f"unknown tag {tag!r}")


def _check_version(version: Any, path: Path) -> None:
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise ValueError(f"{str(path)!r} has no valid format version ({version!r})") from None
    if number > VERSION:
        raise ValueError(
            f"{str(path)!r} was written by a newer llmasos-widgets (causal result format "
            f"version {number}; this one reads up to {VERSION}): upgrade llmasos-widgets"
        )


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise FileNotFoundError(f"no file at {str(path)!r}")
    try:
        with safe_open(str(path), framework="numpy") as file:
            header = file.metadata() or {}
            arrays = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise ValueError(
            f"{str(path)!r} is not a readable causal result file (corrupt, truncated or not "
            f"safetensors): {error}"
        ) from error
    return arrays, header


def write_atomically(path: Path, arrays: dict[str, np.ndarray], header: dict[str, str]) -> Path:
    """Write the safetensors bytes to a temporary file in ``path``'s folder, then move it into
    place: a failure at any step leaves ``path`` as it was."""
    from safetensors.numpy import save

    data = save(arrays, metadata=header)  # fails here, before any file exists, on bad input
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
