#!/usr/bin/env bash
# Set up, then run the test suite (this is what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lint-imports    # the layers written in pyproject.toml: no import from a lower layer to a higher one
# Two worker processes, one core each: the end-to-end demo runs beside the rest of the suite. Tests of one file stay
# in one worker, so module fixtures (trained teacher runs) are built once. Files are handed out in collection order
# (slow end-to-end files first, tests/conftest.py), not xdist's default of the files with most tests first, which
# left the 10-minute demo to start last and run alone. Pass -n 0 to run in one process.
HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q --durations=15 -n 2 --dist loadfile --no-loadscope-reorder "$@"
