"""Tasks other than classification, by the name their specs carry: how a saved spec becomes a model again and
how that model is exported.

A task registers itself from its own package; the engine imports that package by name on first use, so the engine
never imports a task (the arrows point from tasks to the engine).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from ..errors import FofakdError

# Where each known task registers itself.
_TASK_MODULES = {"detection": "fofakd.detection.task"}
_TASKS: dict[str, "SavedModelTask"] = {}


@dataclass(frozen=True)
class SavedModelTask:
    """What the engine needs to rebuild and export a task's saved student.

    Attributes:
        build: (spec, weights file or None) -> the model, weights loaded.
        export: (model, spec, format, out file) -> a report of the export (its checks included).
    """

    build: Callable[[dict[str, Any], Path | None], nn.Module]
    export: Callable[[nn.Module, dict[str, Any], str, Path], dict[str, Any]]


def register_task(name: str, task: SavedModelTask) -> None:
    _TASKS[name] = task


def task_of(spec: dict[str, Any]) -> SavedModelTask | None:
    """The task of a saved spec; None for classification, which the engine handles itself."""
    name = spec.get("task", "classification")
    if name == "classification":
        return None
    if name not in _TASKS and name in _TASK_MODULES:
        importlib.import_module(_TASK_MODULES[name])
    if name not in _TASKS:
        raise FofakdError(f"the saved model is of task '{name}', which this fofakd does not know; update fofakd.")
    return _TASKS[name]
