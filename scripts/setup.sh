#!/usr/bin/env bash
# Set up fofakd on a fresh machine: a virtual environment with plain pip, the package with its test extras,
# and the built-in Fashion-MNIST data set (Debian package, falling back to torchvision's download at first use).
# Idempotent: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${FOFAKD_VENV:-.venv}
PYTHON=${PYTHON:-python3}
# The torch build to install when the venv has none. This machine serves these releases from local disk; on
# another machine set FOFAKD_TORCH_SPEC (e.g. "torch torchvision") to take whatever pip resolves.
TORCH_SPEC=${FOFAKD_TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip

if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
    # shellcheck disable=SC2086
    "$PY" -m pip install --quiet $TORCH_SPEC
fi
# Editable install with test extras; pip resolves nothing new when everything is already present.
"$PY" -m pip install --quiet -e ".[test]"

FMNIST_DIR=/usr/share/datasets/fashion-mnist
if [ ! -d "$FMNIST_DIR" ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
        $SUDO apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null \
            || echo "setup: could not install dataset-fashion-mnist with apt; fofakd will download Fashion-MNIST with torchvision on first use." >&2
    else
        echo "setup: apt-get is unavailable; fofakd will download Fashion-MNIST with torchvision on first use." >&2
    fi
fi
