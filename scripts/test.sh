#!/usr/bin/env bash
# The whole test suite on a fresh machine: Python env, Chromium, JS build + unit tests,
# lint and types, then pytest (unit, integration, real-browser, notebooks).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not browser"`.
# `bash scripts/test.sh --fast`: the fast tier only (unit + fast integration tests: no JS, no
# browser, no notebooks, no real checkpoint, nothing marked slow), for the edit-test loop.
# `bash scripts/test.sh --slow`: the slow tier only (tests marked slow_tier, which the whole
# suite skips: each repeats, at a larger size, a test the whole suite runs).
# Every run writes test-output/junit-<tier>.xml and test-output/run-<tier>.json (wall time by
# stage, load average); `python bench/test_durations.py <tier>` turns them into bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."

TIER=whole
case "${1:-}" in
  --fast) TIER=fast; shift ;;
  --slow) TIER=slow; shift ;;
esac
mkdir -p test-output
ARGS=("$@")
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STAGES=""
STAGE=""
STAGE_START=$SECONDS

stage() {  # close the running stage (its seconds go into the run record) and open the next
  if [[ -n "$STAGE" ]]; then
    STAGES+="${STAGES:+ }$STAGE=$((SECONDS - STAGE_START))"
  fi
  STAGE=$1
  STAGE_START=$SECONDS
}

record_run() {
  local status=$?
  stage ""
  python3 - "$TIER" "$status" "$SECONDS" "$STAGES" "$LOAD_START" "$@" > "test-output/run-$TIER.json" <<'PY'
import json, os, sys
tier, status, wall, stages, load_start, *pytest_args = sys.argv[1:]
print(json.dumps({
    "tier": tier,
    "pytest_args": pytest_args,
    "exit_status": int(status),
    "wall_s": int(wall),
    "stages_s": {name: int(s) for name, s in (x.split("=") for x in stages.split())},
    "load_average_start": [float(x) for x in load_start.split()],
    "load_average_end": [round(x, 2) for x in os.getloadavg()],
}))
PY
}
trap 'record_run "${ARGS[@]}"' EXIT

pytest_tier() {
  .venv/bin/python -m pytest --junitxml="test-output/junit-$TIER.xml" "$@"
}

stage setup
bash scripts/setup.sh

if [[ "$TIER" == fast ]]; then
  stage pytest
  pytest_tier -q -p no:cacheprovider \
    -m "not browser and not slow and not real_model" tests/unit tests/integration "$@"
  exit
fi
if [[ "$TIER" == slow ]]; then
  stage pytest
  pytest_tier -q -p no:cacheprovider --slow-tier -m slow_tier --durations=0 tests "$@"
  exit
fi

# Chromium for the browser tests, and a CJK font so screenshots of Chinese text show glyphs
stage chromium
if [[ ! -x /usr/bin/chromium ]] || ! dpkg -s fonts-wqy-zenhei >/dev/null 2>&1; then
  SUDO=""; [[ "$(id -u)" != 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null
fi

echo "== js: build, type-check, unit tests"
stage js
(cd js && npm ci --no-audit --no-fund --silent && npm run --silent build && npm run --silent typecheck && npm test --silent)
if ! git diff --quiet -- llmasos_widgets/static 2>/dev/null; then
  echo "the committed bundle in llmasos_widgets/static is stale: commit the rebuilt files" >&2
  exit 1
fi

echo "== python: ruff, mypy"
stage lint
.venv/bin/ruff check llmasos_widgets llmasos tests bench scripts
.venv/bin/mypy

echo "== pytest"
stage pytest
pytest_tier --durations=25 "$@"

# the oldest admitted transformers, on the whole-suite run (not when pytest arguments narrow it)
if [[ $# -eq 0 ]]; then
  echo "== pytest: tracing/explain/loading on the oldest admitted transformers"
  stage oldest_transformers
  bash scripts/test_oldest_transformers.sh --junitxml=test-output/junit-oldest.xml
fi
