"""`fofakd detect train` and `fofakd detect distill`: the classification Trainer's loop, checkpoints, resume and
logs, with detection data, detectors, the registered methods on a `DetectorSource` and COCO mAP in place of
top-1."""
from __future__ import annotations

from typing import Any

import torch

from ..engine.distributed import barrier
from ..engine.trainer import Trainer
from .builder import build_detection_models
from .config import DetectionConfig
from .data import build_detection_data
from .evaluate import evaluate_detector
from .source import build_detection_distiller


class DetectionTrainer(Trainer):
    """One detection run; best.pt follows the validation AP."""

    score_key = "val_AP"

    def _build_parts(self) -> None:
        cfg = self.cfg
        self.data = build_detection_data(cfg, self.info.rank, self.info.world_size, self.device,
                                         barrier=lambda: barrier(self.info))
        teacher, student, self.spec = build_detection_models(cfg, self.command, self.data)
        self.distiller = build_detection_distiller(self.method, teacher, student, **cfg.method_options).to(self.device)

    def _mean_ap(self, model: torch.nn.Module) -> dict[str, float]:
        data = self.data
        return evaluate_detector(model, data.val, data.val_coco, data.val_image_ids,
                                 [c["id"] for c in data.categories], self.device, self.cfg.amp, self.info)

    def _validate(self, model: torch.nn.Module) -> dict[str, float]:
        return {f"val_{k}": v for k, v in self._mean_ap(model).items()}

    def _test(self, model: torch.nn.Module) -> tuple[dict[str, Any], str]:
        last = self.history[-1] if self.history else {}
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
    return DetectionTrainer(cfg, command).fit()
