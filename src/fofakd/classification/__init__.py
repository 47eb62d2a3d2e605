"""Image classification: `fofakd train` and `fofakd distill` of timm classifiers on image data sets, and their
saved students (rebuilt, exported to TorchScript, ONNX or a timm model folder).

The public names are imported on first use, so the command line starts without loading torch and timm.
"""
from __future__ import annotations

from ..lazy import lazy_exports

_LAZY = {
    "ClassificationConfig": "fofakd.classification.config",
    "build_config": "fofakd.classification.config",
    "ClassificationTask": "fofakd.classification.training",
    "run": "fofakd.classification.training",
}

__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY, globals())
