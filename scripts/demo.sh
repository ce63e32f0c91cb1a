#!/usr/bin/env bash
# The demo: set up, then open JupyterLab on the quickstart notebook (bundled tiny model).
#   bash scripts/demo.sh                      # JupyterLab in the browser
#   bash scripts/demo.sh --report report.html # headless: write a standalone HTML report
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if [[ "${1:-}" == "--report" ]]; then
  exec .venv/bin/python -m llmasos_widgets.demo --report "${2:-report.html}"
fi
exec .venv/bin/jupyter lab notebooks/quickstart.ipynb "$@"
