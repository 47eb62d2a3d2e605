#!/usr/bin/env bash
# Set up, then run the built-in example (the training demo replaces it once `fofakd demo` lands).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
HF_HUB_OFFLINE=1 .venv/bin/python examples/quickstart.py "$@"
