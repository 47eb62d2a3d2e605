"""Detection as a saved-model task (the engine's `SavedModelTask` seam): detectors rebuilt from their spec and
exported. Registering loads nothing heavy; torchvision's detectors load when a detector is built."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..engine.tasks import SavedModelTask, register_task


def _build(spec: dict[str, Any], weights: Path | None) -> nn.Module:
    from .builder import detector_from_spec

    return detector_from_spec(spec, weights)


def _export(model: nn.Module, spec: dict[str, Any], fmt: str, out: Path, fold_normalisation: bool) -> dict[str, Any]:
    from .export import export_detector

    return export_detector(model, spec, fmt, out, fold_normalisation)


register_task("detection", SavedModelTask(build=_build, export=_export))
