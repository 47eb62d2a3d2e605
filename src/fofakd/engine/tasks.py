"""The task seam: what a task (classification, detection) supplies to the engine.

- `TrainingTask`: one run's data, models and distiller, validation, test metric and best-checkpoint key. The
  `Trainer` runs any of them and knows no task, method or data set.
- `SavedModelTask`: how a saved spec of a task becomes a model again and is exported.

A task registers its `SavedModelTask` when its `saved_model` module is imported (`fofakd.tasks` imports every
built-in one), so the engine never imports a task: the arrows point from tasks to the engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from ..errors import FofakdError
from .distributed import DistInfo

_TASKS: dict[str, "SavedModelTask"] = {}


class TrainingTask:
    """The task-specific parts of one run; a subclass per task.

    Args:
        cfg: The run's options.
        command: "train" (one model, no teacher) or "distill".
        info: The process's place in a distributed run.
        device: Where the run trains.
    """

    name = ""
    score_key = ""  # the validation metric that picks checkpoints/best.pt (higher is better)

    def __init__(self, cfg: Any, command: str, info: DistInfo, device: Any):
        self.cfg, self.command, self.info, self.device = cfg, command, info, device
        self.method = "scratch" if command == "train" else cfg.method

    def build(self) -> tuple[nn.Module, dict[str, Any]]:
        """Data (`self.data`, with `train` and `val` loaders), models and the method's distiller: returns
        (distiller, student spec to rebuild it from)."""
        raise NotImplementedError

    @property
    def train_loader(self) -> Any:
        return self.data.train

    @property
    def has_validation(self) -> bool:
        return self.data.val is not None

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics of a bare student, keyed as they appear in metrics.jsonl (`score_key` among them)."""
        raise NotImplementedError

    def test(self, model: nn.Module, history: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
        """The final model's test metrics for summary.json, and the line that reports them."""
        raise NotImplementedError

    def run_config(self) -> dict[str, Any]:
        """The run's config as config.yaml records it (its `task` included). How this invocation treats the folder
        (--resume, --overwrite, --stop-after) is not the run's: `train --config RUN/config.yaml` must not inherit it."""
        config = {k: v for k, v in self.cfg.to_dict().items() if k not in ("resume", "overwrite", "stop_after")}
        if self.command == "train":  # no teacher, no method: say so rather than show the distill default
            config.update(method="scratch", method_options={})
        return config


@dataclass(frozen=True)
class SavedModelTask:
    """What the engine needs to rebuild and export a task's saved student.

    Attributes:
        build: (spec, weights file or None) -> the model, weights loaded.
        export: (model, spec, format, out file, fold_normalisation) -> a report of the export (its checks
            included); called for the file formats but safetensors, which the engine writes itself.
        export_folder: (model, spec, folder, run or None) -> a report; writes the `timm` folder format, for the
            tasks that have one. `run` holds the run's config and summary, when the weights are a run's.
        push: (model, spec, run, Hub repository, folder) -> where the folder export was uploaded.
    """

    build: Callable[[dict[str, Any], Path | None], nn.Module]
    export: Callable[[nn.Module, dict[str, Any], str, Path, bool], dict[str, Any]]
    export_folder: Callable[[nn.Module, dict[str, Any], Path, dict[str, Any] | None], dict[str, Any]] | None = None
    push: Callable[[nn.Module, dict[str, Any], dict[str, Any] | None, str, Path], str] | None = None


def register_task(name: str, task: SavedModelTask) -> None:
    _TASKS[name] = task


def task_of(spec: dict[str, Any]) -> SavedModelTask:
    """The task of a saved spec (classification when the spec names none)."""
    name = spec.get("task", "classification")
    if name not in _TASKS:
        raise FofakdError(f"the saved model is of task '{name}', which is not registered; import fofakd.tasks "
                          "first, or update fofakd if it does not know the task.")
    return _TASKS[name]
