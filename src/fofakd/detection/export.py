"""ONNX export of a trained detector, checked against PyTorch with onnxruntime on an image it was not traced on."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchvision.models.detection import FasterRCNN

from ..engine.export import onnxruntime_module
from ..errors import FofakdError


def export_detector(model: FasterRCNN, spec: dict[str, Any], fmt: str, out: Path,
                    fold_normalisation: bool = False) -> dict[str, Any]:
    """Write `model` as ONNX (one image in, boxes, labels and scores out) and compare it with PyTorch. A detector
    takes pixels in [0, 1] and normalises them itself, so `fold_normalisation` changes nothing."""
    if fmt != "onnx":
        raise FofakdError(f"detectors export to onnx or safetensors, not {fmt}; pass --format onnx.")
    ort = onnxruntime_module()
    size = spec["detector"].get("fixed_size") or [spec["detector"]["min_size"]] * 2
    generator = torch.Generator().manual_seed(0)
    traced_on, checked_on = (torch.rand(3, *size, generator=generator) for _ in range(2))
    model.eval()
    torch.onnx.export(model, ([traced_on],), str(out), input_names=["image"],
                      output_names=["boxes", "labels", "scores"], opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    boxes, labels, scores = session.run(None, {"image": checked_on.numpy()})
    expected = model([checked_on])[0]
    if boxes.shape != tuple(expected["boxes"].shape) or labels.tolist() != expected["labels"].tolist():
        raise FofakdError(f"the ONNX detector found {len(boxes)} boxes where PyTorch finds {len(expected['boxes'])}; "
                          "this backbone does not export faithfully, keep the safetensors weights.")
    diff = float(abs(torch.from_numpy(boxes) - expected["boxes"]).max()) if len(boxes) else 0.0
    return {"input_shape": [3, *size], "outputs": ["boxes", "labels", "scores"], "detections": len(boxes),
            "max_abs_diff": diff, "max_abs_score_diff": float(abs(torch.from_numpy(scores) - expected["scores"]).max())
            if len(boxes) else 0.0}
