"""Exporting the bare student: safetensors, TorchScript or ONNX (checked against PyTorch with onnxruntime)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..errors import FofakdError
from .run_dir import read_student_spec, write_weights
from .tasks import task_of

FORMATS = ("onnx", "torchscript", "safetensors")


def load_student(checkpoint: str | Path) -> tuple[nn.Module, dict[str, Any], Path]:
    """The bare student of a run directory, a student.safetensors file or a training checkpoint (.pt)."""
    from .checkpoint import load_checkpoint

    path = Path(checkpoint)
    if path.suffix == ".pt":
        state = load_checkpoint(path)
        if "student_spec" not in state:
            raise FofakdError(f"'{path}' is not a fofakd training checkpoint; pass a run directory instead.")
        spec = state["student_spec"]
        model = _model_from_spec(spec)
        prefix = "student."
        model.load_state_dict({k[len(prefix):]: v for k, v in state["distiller"].items() if k.startswith(prefix)})
        return model.eval(), spec, path
    spec, weights = read_student_spec(path)
    return _model_from_spec(spec, weights).eval(), spec, weights


def _model_from_spec(spec: dict[str, Any], weights: Path | None = None) -> nn.Module:
    """A classifier, or the model of another task (a detector for the specs `fofakd detect` writes)."""
    task = task_of(spec)
    if task is not None:
        return task.build(spec, weights)
    from .builder import model_from_spec

    return model_from_spec(spec, checkpoint=weights)


def export_student(checkpoint: str | Path, fmt: str, out: str | Path, overwrite: bool = False,
                   fold_normalisation: bool = False) -> dict[str, Any]:
    """Write the student in `fmt` to `out`; for ONNX and TorchScript, also the largest output difference to
    PyTorch on random input.

    Args:
        fold_normalisation: Put the input normalisation into the ONNX / TorchScript graph, so that it takes pixels
            in [0, 1]; without it the graph expects normalised input (the mean and std are in the ONNX metadata).
    """
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter about shape-dependent branches in timm models
        check_export_target(Path(out), overwrite)
        return _export(checkpoint, fmt, out, fold_normalisation)


def check_export_target(out: Path, overwrite: bool) -> None:
    """Refuse a folder, or an existing file unless `overwrite`, before anything is loaded or written."""
    if out.is_dir():
        raise FofakdError(f"--out '{out}' is a folder; give the file to write, e.g. '{out / 'student.onnx'}'.")
    if out.exists() and not overwrite:
        raise FofakdError(f"'{out}' already exists; pass --overwrite to replace it, or choose another --out.")


def _export(checkpoint: str | Path, fmt: str, out: str | Path, fold_normalisation: bool = False) -> dict[str, Any]:
    if fmt not in FORMATS:
        raise FofakdError(f"export format '{fmt}' is not known; use one of {', '.join(FORMATS)}.")
    model, spec, weights = load_student(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"format": fmt, "out": str(out), "model": spec["model"]}
    if fmt == "safetensors":  # one file: the spec travels in its metadata
        tmp = out.with_name(f".{out.name}.tmp")
        write_weights(model, spec, tmp)
        tmp.replace(out)
        return report
    task = task_of(spec)
    if task is not None:
        return {**report, **task.export(model, spec, fmt, out)}
    if fold_normalisation:
        model = WithNormalisation(model, spec["mean"], spec["std"])
    report["input_shape"] = [None, spec["in_chans"], spec["img_size"], spec["img_size"]]
    report["input"] = "pixels in [0, 1]" if fold_normalisation else "normalised with the metadata's mean and std"
    example = torch.rand(2, spec["in_chans"], spec["img_size"], spec["img_size"])
    expected = model(example)
    if fmt == "torchscript":
        traced = torch.jit.trace(model, example)
        traced.save(str(out))
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


def onnxruntime_module() -> ModuleType:
    """onnxruntime, or a clear error naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise FofakdError("ONNX export needs onnx and onnxruntime; install fofakd[export].") from None
    return onnxruntime


def _export_onnx(model: nn.Module, example: torch.Tensor, out: Path, metadata: dict[str, str]):
    ort = onnxruntime_module()
    import onnx

    torch.onnx.export(model, (example,), str(out), input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    graph = onnx.load(str(out))
    onnx.helper.set_model_props(graph, metadata)
    onnx.save(graph, str(out))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": example.numpy()})[0]
