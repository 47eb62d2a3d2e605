"""fofakd: heterogeneous knowledge distillation for vision models (FOFA and baselines).

The public names are imported on first use, so `fofakd --help` does not wait for torch and timm to load.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import FofakdError

__version__ = "0.1.0"

_LAZY = {
    "Distiller": "fofakd.methods",
    "build_distiller": "fofakd.methods",
    "list_methods": "fofakd.methods",
    "method_options": "fofakd.methods",
    "register_method": "fofakd.methods",
    "create_model": "fofakd.models",
    "ModelStages": "fofakd.features",
    "StageInfo": "fofakd.features",
    "discover_stages": "fofakd.features",
    "forward_stages": "fofakd.features",
}

__all__ = ["FofakdError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fofakd' has no attribute '{name}'")
