"""Exporting the bare student: safetensors, TorchScript or ONNX (checked against PyTorch with onnxruntime)."""
from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..errors import FofakdError
from ..files import check_target, write_atomic
from .run_dir import MARKER, RUN_DIRS, RUN_FILES, RunDir, read_student_spec, write_weights
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
    """The model a spec describes, built by the spec's task (a classifier, a detector, ...)."""
    return task_of(spec).build(spec, weights)


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
    """Refuse a folder, a file a run owns, or an existing file unless `overwrite`, before anything is loaded."""
    check_target(out, overwrite)
    run = RunDir(out.absolute().parent.parent if out.absolute().parent.name in RUN_DIRS else out.absolute().parent)
    relative = out.absolute().relative_to(run.path)
    owned = relative.parts[0] in (*RUN_FILES, *RUN_DIRS, MARKER)
    if owned and run.is_fofakd_run():
        raise FofakdError(f"'{out}' belongs to the run in '{run.path}' (it resumes, evaluates or exports from it); "
                          "choose an --out outside the run's own files.")


def _export(checkpoint: str | Path, fmt: str, out: str | Path, fold_normalisation: bool = False) -> dict[str, Any]:
    if fmt not in FORMATS:
        raise FofakdError(f"export format '{fmt}' is not known; use one of {', '.join(FORMATS)}.")
    model, spec, weights = load_student(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"format": fmt, "out": str(out), "model": spec["model"]}
    if fmt == "safetensors":  # one file: the spec travels in its metadata
        write_weights(model, spec, out)
        return report

    def write(tmp: Path) -> None:
        report.update(task_of(spec).export(model, spec, fmt, tmp, fold_normalisation))

    write_atomic(out, write)
    return report


def onnxruntime_module() -> ModuleType:
    """onnxruntime, or a clear error naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise FofakdError("ONNX export needs onnx and onnxruntime; install fofakd[export].") from None
    return onnxruntime
