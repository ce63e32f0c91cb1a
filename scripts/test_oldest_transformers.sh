#!/usr/bin/env bash
# The tracing, explain and loading tests against the oldest transformers the package admits
# (pyproject: transformers>=5.17), in a venv of their own; scripts/test.sh runs them after the
# main suite, which runs against the newest release.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
OLDEST="transformers==5.17.0"
VENV=.venv-oldest

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
fi
"$VENV/bin/python" -m pip install --quiet "$OLDEST" -e . pytest nbval hypothesis "accelerate>=1.0"
"$VENV/bin/python" -c "import transformers; print('== oldest admitted transformers:', transformers.__version__)"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "not browser and not slow" \
  tests/integration/test_tracing.py tests/integration/test_explain.py \
  tests/integration/test_loading.py tests/integration/test_trace_generate.py \
  tests/integration/test_explain_memory.py tests/integration/test_attribution_memory.py "$@"
