"""COCO box mAP of a detector over a (possibly sharded) loader."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
import torch.distributed as dist
from torch import nn

from ..engine.distributed import DistInfo
from ..engine.evaluate import autocast_context
from .coco import coco_evaluate, to_coco_results


@torch.no_grad()
def evaluate_detector(model: nn.Module, loader: Iterable, coco_gt: Any, image_ids: Sequence[int],
                      category_ids: Sequence[int], device: torch.device, amp: str = "none",
                      info: DistInfo | None = None) -> dict[str, float]:
    """AP, AP50, AP75, APs, APm, APl (in %) of a bare detector; each process detects its shard of the images."""
    was_training = model.training
    model.eval()
    results: list[dict[str, Any]] = []
    for images, targets in loader:
        with autocast_context(device, amp):
            outputs = model(images)
        outputs = [{k: v.float() if v.is_floating_point() else v for k, v in o.items()} for o in outputs]
        results += to_coco_results(outputs, [int(t["image_id"]) for t in targets], category_ids)
    model.train(was_training)
    if info is not None and info.enabled:
        shards: list[Any] = [None] * info.world_size
        dist.all_gather_object(shards, results)
        results = [record for shard in shards for record in shard]
    return coco_evaluate(coco_gt, results, image_ids)
