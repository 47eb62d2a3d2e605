"""Detection as a task the engine can rebuild and export from a saved spec."""
from __future__ import annotations

from ..engine.tasks import SavedModelTask, register_task
from .builder import detector_from_spec
from .export import export_detector

register_task("detection", SavedModelTask(build=lambda spec, weights: detector_from_spec(spec, weights),
                                          export=export_detector))
