"""Classifiers as a saved-model task (the engine's `SavedModelTask` seam): rebuilt from their spec, exported to
TorchScript or ONNX (checked against PyTorch with onnxruntime) or as a timm model folder."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..engine.export import onnxruntime_module
from ..engine.tasks import SavedModelTask, register_task
from .models import model_from_spec


def export_classifier(model: nn.Module, spec: dict[str, Any], fmt: str, out: Path,
                      fold_normalisation: bool = False) -> dict[str, Any]:
    """Write `model` as TorchScript or ONNX and report the largest output difference to PyTorch on random input."""
    if fold_normalisation:
        model = WithNormalisation(model, spec["mean"], spec["std"])
    report: dict[str, Any] = {"input_shape": [None, spec["in_chans"], spec["img_size"], spec["img_size"]],
                              "input": "pixels in [0, 1]" if fold_normalisation
                              else "normalised with the metadata's mean and std"}
    example = torch.rand(2, spec["in_chans"], spec["img_size"], spec["img_size"])
    expected = model(example)
    if fmt == "torchscript":
        # Saved to memory and written by Python: TorchScript's own file writer aborts the process on a full disk.
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.trace(model, example), buffer)
        out.write_bytes(buffer.getvalue())
        actual = torch.jit.load(str(out))(example)
    else:
        actual = torch.from_numpy(_export_onnx(model, example, out, onnx_metadata(spec, fold_normalisation)))
    report["max_abs_diff"] = float((actual - expected).abs().max())
    return report


class WithNormalisation(nn.Module):
    """A classifier that takes pixels in [0, 1] and normalises them itself."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.mean) / self.std)


def onnx_metadata(spec: dict[str, Any], folded: bool) -> dict[str, str]:
    """What a consumer of the ONNX file needs to feed it and read its output, as string metadata."""
    return {
        "fofakd_spec": json.dumps(spec),
        "input_size": json.dumps([spec["in_chans"], spec["img_size"], spec["img_size"]]),
        "input_range": "[0, 1] pixels, normalisation folded into the graph" if folded
        else "normalised: (pixels in [0, 1] - mean) / std",
        "mean": json.dumps(spec["mean"]), "std": json.dumps(spec["std"]),
        "class_names": json.dumps(spec.get("class_names", [])),
    }


def _export_onnx(model: nn.Module, example: torch.Tensor, out: Path, metadata: dict[str, str]):
    ort = onnxruntime_module()
    import onnx

    buffer = io.BytesIO()  # built in memory, then written by Python (so a full disk is an OSError, not an abort)
    torch.onnx.export(model, (example,), buffer, input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    graph = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(graph, metadata)
    out.write_bytes(graph.SerializeToString())
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": example.numpy()})[0]


def _export_timm(model: nn.Module, spec: dict[str, Any], folder: Path, run: dict[str, Any] | None) -> dict[str, Any]:
    from .timm_export import export_timm

    return export_timm(model, spec, folder, run)


def _push_timm(model: nn.Module, spec: dict[str, Any], run: dict[str, Any] | None, repo_id: str, folder: Path) -> str:
    from .timm_export import push_timm

    return push_timm(model, spec, run, repo_id, folder)


register_task("classification", SavedModelTask(build=lambda spec, weights: model_from_spec(spec, checkpoint=weights),
                                               export=export_classifier, export_folder=_export_timm, push=_push_timm))
