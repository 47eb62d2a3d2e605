"""Models by timm name, weights from local checkpoints, and the specs fofakd files carry (imported on first use)."""
from __future__ import annotations

from ..lazy import lazy_exports

_LAZY = {
    "load_weights": "fofakd.models.checkpoint",
    "read_state_dict": "fofakd.models.checkpoint",
    "create_model": "fofakd.models.factory",
    "has_fixed_input_size": "fofakd.models.factory",
}

__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY, globals())
