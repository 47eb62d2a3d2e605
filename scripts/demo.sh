#!/usr/bin/env bash
# Set up, then run the built-in demo: the shipped ResNet teacher distilled into a small ViT on Fashion-MNIST with
# scratch, kd, fitnet and fofa (about 15 minutes on 2 CPU cores; --quick, without KD, about 8 on one core).
# Writes ./demo/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
HF_HUB_OFFLINE=1 .venv/bin/fofakd demo "$@"
