"""fofakd: heterogeneous knowledge distillation for vision models (FOFA and baselines).

The public names are imported on first use, so `fofakd --help` does not wait for torch and timm to load.
"""
from __future__ import annotations

from .errors import FofakdError
from .lazy import lazy_exports

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
__getattr__ = lazy_exports(__name__, _LAZY, globals())
