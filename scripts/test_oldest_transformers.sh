#!/usr/bin/env bash
# The tracing, explain and loading tests against the oldest transformers the package admits
# (pyproject: transformers>=5.17), in a venv of their own; scripts/test.sh runs them after the
# main suite, which runs against the newest release.
#
# The venv holds only what differs from the main one (transformers and the versions it pins,
# such as an older huggingface_hub) and finds everything else -- torch, pytest, the package
# itself -- in .venv (scripts/setup.sh) through a .pth file, so its own packages come first.
# Installing pip and torch into it on every clean clone took most of this stage's 2 min 30 s.
# A second run with nothing changed (this script, the main venv's install) installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
OLDEST_VERSION="5.17.0"
VENV=.venv-oldest
MAIN=.venv

if [[ ! -x "$MAIN/bin/python" ]]; then
  echo "$MAIN is missing: run \`bash scripts/setup.sh\` first" >&2
  exit 1
fi
MAIN_SITE="$("$MAIN/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
STAMP="$VENV/.installed-from"
WANT="$({ cat scripts/test_oldest_transformers.sh; cat "$MAIN/.installed-from" 2>/dev/null || true; } \
  | sha256sum | cut -d' ' -f1) $MAIN_SITE"

if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv --without-pip "$VENV"  # the main venv's pip installs into it
  OWN_SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  # addsitedir, not a bare path: the main venv's own .pth files (the editable install) apply
  echo "import site; site.addsitedir('$MAIN_SITE')" > "$OWN_SITE/zz_main_venv.pth"
  # pip leaves the main venv's newer copies alone ("outside environment"); --no-compile: the
  # few modules the tests import are compiled on import (compiling all of transformers took
  # 40 of the 50 s of this install on 2 busy cores)
  "$MAIN/bin/python" -m pip --python "$VENV/bin/python" install --quiet --no-compile \
    --disable-pip-version-check "transformers==$OLDEST_VERSION"
  echo "$WANT" > "$STAMP"
fi
"$VENV/bin/python" - "$OLDEST_VERSION" "$VENV" <<'PY'
import os, sys
import torch, transformers
version, venv = sys.argv[1:]
assert transformers.__version__ == version, (transformers.__version__, transformers.__file__)
assert os.path.abspath(transformers.__file__).startswith(os.path.abspath(venv)), transformers.__file__
print("== oldest admitted transformers:", transformers.__version__, "with torch", torch.__version__)
PY
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "not browser and not slow" \
  tests/integration/test_tracing.py tests/integration/test_explain.py \
  tests/integration/test_loading.py tests/integration/test_trace_generate.py \
  tests/integration/test_explain_memory.py tests/integration/test_attribution_memory.py "$@"
