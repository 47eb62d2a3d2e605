"""Top-1 / top-5 accuracy over a loader, summed across processes."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Iterable

import torch
from torch import nn

from .distributed import DistInfo, all_reduce_sum


def autocast_context(device: torch.device, amp: str):
    if amp == "none":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device, amp: str = "none",
             info: DistInfo | None = None, channels_last: bool = False) -> dict[str, float]:
    """{"top1", "top5", "samples", "loss"} of `model` (a bare classifier) on `loader`."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # top1, top5, samples, loss sum
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp):
            logits = model(images)
        logits = logits.float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        correct = top == labels[:, None]
        totals += torch.stack([
            correct[:, 0].sum(), correct.any(dim=1).sum(), torch.tensor(len(labels), device=device),
            torch.nn.functional.cross_entropy(logits, labels, reduction="sum"),
        ]).double()
    model.train(was_training)
    totals = all_reduce_sum(totals, info) if info is not None else totals
    top1, top5, samples, loss = totals.tolist()
    samples = max(samples, 1)
    return {"top1": 100 * top1 / samples, "top5": 100 * top5 / samples, "samples": int(samples),
            "loss": loss / samples}
