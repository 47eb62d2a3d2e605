#!/usr/bin/env bash
# Set up, then run the test suite (this is what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lint-imports    # the layers written in pyproject.toml: no import from a lower layer to a higher one
HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q --durations=15 "$@"
