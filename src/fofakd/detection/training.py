"""Detection as a training task (the engine's `TrainingTask` seam): `fofakd detect train` and `fofakd detect
distill` run the engine's Trainer with detection data, detectors, the registered methods on a `DetectorSource` and
COCO mAP in place of top-1."""
from __future__ import annotations

from typing import Any

import torch

from ..engine.distributed import barrier
from ..engine.tasks import TrainingTask
from ..engine.trainer import Trainer
from .builder import build_detection_models
from .config import DetectionConfig
from .data import build_detection_data
from .evaluate import evaluate_detector
from .source import build_detection_distiller


class DetectionTask(TrainingTask):
    """A Faster R-CNN detector distilled (or trained); best.pt follows the validation AP."""

    name = "detection"
    score_key = "val_AP"

    def build(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        cfg = self.cfg
        self.data = build_detection_data(cfg, self.info.rank, self.info.world_size, self.device,
                                         barrier=lambda: barrier(self.info))
        teacher, student, spec = build_detection_models(cfg, self.command, self.data)
        self.distiller = build_detection_distiller(self.method, teacher, student, **cfg.method_options)
        return self.distiller.to(self.device), spec

    def _mean_ap(self, model: torch.nn.Module) -> dict[str, float]:
        data = self.data
        return evaluate_detector(model, data.val, data.val_coco, data.val_image_ids,
                                 [c["id"] for c in data.categories], self.device, self.cfg.amp, self.info)

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        return {f"val_{k}": v for k, v in self._mean_ap(model).items()}

    def test(self, model: torch.nn.Module, history: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
        last = history[-1] if history else {}
        if model is self.distiller.student and self.score_key in last:
            # The last epoch validated these very weights on this split: no second COCO pass.
            stats = {k[len("val_"):]: v for k, v in last.items() if k.startswith("val_")}
        else:
            stats = self._mean_ap(model)
        line = " ".join(f"{k} {v:.1f}" for k, v in stats.items())
        return ({**{f"final_{k}": v for k, v in stats.items()}, "eval_images": len(self.data.val_image_ids)},
                f"{self.cfg.splits()[1]} {line} on {len(self.data.val_image_ids)} images")


def run_detection(cfg: DetectionConfig, command: str) -> dict[str, Any]:
    """Train (command "train") or distil (command "distill") a detector as `cfg` says; returns the run summary."""
    return Trainer(cfg, command, DetectionTask).fit()
