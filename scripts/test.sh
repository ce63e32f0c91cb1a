#!/usr/bin/env bash
# The whole test suite on a fresh machine: Python env, Chromium, JS build + unit tests,
# lint and types, then pytest (unit, integration, real-browser, notebooks).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not browser"`.
# `bash scripts/test.sh --fast`: the fast tier only (unit + fast integration tests: no JS, no
# browser, no notebooks, no real checkpoint, nothing marked slow), for the edit-test loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if [[ "${1:-}" == "--fast" ]]; then
  shift
  exec .venv/bin/python -m pytest -q -p no:cacheprovider \
    -m "not browser and not slow and not real_model" tests/unit tests/integration "$@"
fi

# Chromium for the browser tests, and a CJK font so screenshots of Chinese text show glyphs
if [[ ! -x /usr/bin/chromium ]] || ! dpkg -s fonts-wqy-zenhei >/dev/null 2>&1; then
  SUDO=""; [[ "$(id -u)" != 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null
fi

echo "== js: build, type-check, unit tests"
(cd js && npm ci --no-audit --no-fund --silent && npm run --silent build && npm run --silent typecheck && npm test --silent)
if ! git diff --quiet -- llmasos_widgets/static 2>/dev/null; then
  echo "the committed bundle in llmasos_widgets/static is stale: commit the rebuilt files" >&2
  exit 1
fi

echo "== python: ruff, mypy"
.venv/bin/ruff check llmasos_widgets llmasos tests bench scripts
.venv/bin/mypy

echo "== pytest"
.venv/bin/python -m pytest --durations=25 "$@"

# the oldest admitted transformers, on the whole-suite run (not when pytest arguments narrow it)
if [[ $# -eq 0 ]]; then
  echo "== pytest: tracing/explain/loading on the oldest admitted transformers"
  bash scripts/test_oldest_transformers.sh
fi
