"""Image classification as a training task: `fofakd train` and `fofakd distill`."""
from __future__ import annotations

from typing import Any

import torch

from ..data import build_data
from ..methods import build_distiller
from .builder import build_run_models
from .config import TrainingConfig
from .evaluate import evaluate
from .tasks import TrainingTask
from .trainer import Trainer


class ClassificationTask(TrainingTask):
    """A classifier distilled (or trained) on an image data set; best.pt follows the validation top-1."""

    name = "classification"
    score_key = "val_top1"

    def build(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        cfg = self.cfg
        self.data = build_data(cfg, self.info.rank, self.info.world_size, self.device)
        teacher, student, spec = build_run_models(cfg, self.command, self.data)
        options = {"label_smoothing": cfg.smoothing, **cfg.method_options}
        input_size = (self.data.in_chans, self.data.img_size, self.data.img_size)
        distiller = build_distiller(self.method, teacher=teacher, student=student, input_size=input_size, **options)
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


def run(cfg: TrainingConfig, command: str) -> dict[str, Any]:
    """Train (command "train") or distil (command "distill") a classifier as `cfg` says; returns the run summary."""
    return Trainer(cfg, command, ClassificationTask).fit()
