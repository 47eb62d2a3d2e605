"""Image classification as a training task (the engine's `TrainingTask` seam): `fofakd train` and `fofakd distill`."""
from __future__ import annotations

from typing import Any

import torch

from ..data import build_data
from ..data.bundle import DataBundle
from ..engine.evaluate import evaluate
from ..engine.tasks import TrainingTask
from ..engine.trainer import Trainer
from ..methods import build_distiller
from .config import ClassificationConfig
from .models import build_run_models


class ClassificationTask(TrainingTask):
    """A classifier distilled (or trained) on an image data set; best.pt follows the validation top-1."""

    name = "classification"
    score_key = "val_top1"

    def build(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        cfg = self.cfg
        self.data = build_data(cfg, self.info.rank, self.info.world_size, self.device)
        distiller, spec = build_run_distiller(cfg, self.command, self.data)
        return distiller.to(self.device), spec

    def _evaluate(self, model: torch.nn.Module, loader: Any) -> dict[str, float]:
        return evaluate(model, loader, self.device, self.cfg.amp, self.info, self.cfg.channels_last)

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        val = self._evaluate(model, self.data.val)
        return {"val_top1": val["top1"], "val_top5": val["top5"], "val_loss": val["loss"]}

    def test(self, model: torch.nn.Module, history: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
        test = self._evaluate(model, self.data.test)
        split = self.data.test_split  # "val" for an image folder without test/: say so rather than call it test
        line = f"{split} top-1 {test['top1']:.2f} top-5 {test['top5']:.2f} on {test['samples']} {split} images"
        return {"test_top1": test["top1"], "test_top5": test["top5"], "test_samples": test["samples"],
                "test_split": split}, line


def build_run_distiller(cfg: ClassificationConfig, command: str,
                        data: DataBundle) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The run's distiller (teacher, student and the method's modules, untrained) and its student's spec; the run's
    label smoothing is the method's unless its options say otherwise."""
    teacher, student, spec = build_run_models(cfg, command, data)
    method = "scratch" if command == "train" else cfg.method
    distiller = build_distiller(method, teacher=teacher, student=student,
                                input_size=(data.in_chans, data.img_size, data.img_size),
                                **{"label_smoothing": cfg.smoothing, **cfg.method_options})
    return distiller, spec


def run(cfg: ClassificationConfig, command: str) -> dict[str, Any]:
    """Train (command "train") or distil (command "distill") a classifier as `cfg` says; returns the run summary."""
    return Trainer(cfg, command, ClassificationTask).fit()
