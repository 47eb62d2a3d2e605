"""The tasks fofakd knows. Importing this module registers each task's saved models with the engine, so that
`load_student` and `export_student` rebuild and export any fofakd student: a classifier or a detector."""
from __future__ import annotations

from .classification import saved_model as classification  # noqa: F401  (registers "classification")
from .detection import saved_model as detection  # noqa: F401  (registers "detection")
from .engine.export import export_student, load_student

__all__ = ["export_student", "load_student"]
