"""Exporting the bare student: safetensors, TorchScript or ONNX (checked against PyTorch with onnxruntime)."""
from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..errors import FofakdError
from ..files import check_target, write_atomic, write_folder_atomic
from .run_dir import MARKER, RUN_DIRS, RUN_FILES, RunDir, read_student_spec, write_weights
from .tasks import task_of

FORMATS = ("onnx", "torchscript", "safetensors", "timm")


def load_student(checkpoint: str | Path, task: str | None = None) -> tuple[nn.Module, dict[str, Any], Path]:
    """The bare student of a run directory, a student.safetensors file or a training checkpoint (.pt).

    Args:
        task: The task the caller handles; a student of another task is refused before it is built.
    """
    from .checkpoint import load_checkpoint

    path = Path(checkpoint)
    if path.suffix == ".pt":
        state = load_checkpoint(path)
        if "student_spec" not in state:
            raise FofakdError(f"'{path}' is not a fofakd training checkpoint; pass a run directory instead.")
        spec = state["student_spec"]
        _check_task(spec, task, path)
        model = _model_from_spec(spec)
        prefix = "student."
        model.load_state_dict({k[len(prefix):]: v for k, v in state["distiller"].items() if k.startswith(prefix)})
        return model.eval(), spec, path
    spec, weights = read_student_spec(path)
    _check_task(spec, task, path)
    return _model_from_spec(spec, weights).eval(), spec, weights


def _check_task(spec: dict[str, Any], task: str | None, path: Path) -> None:
    saved = spec.get("task", "classification")
    if task is not None and saved != task:
        command = "fofakd detect eval" if saved == "detection" else "fofakd eval"
        raise FofakdError(f"'{path}' holds a {saved} model, not a {task} one; evaluate it with `{command}`.")


def eval_data_dir(spec: dict[str, Any], data: str, data_dir: str | None) -> str | None:
    """Where to read `data` for evaluating a saved student: `data_dir` when given, else the folder the student was
    trained on when `data` is the data set it was trained on."""
    return data_dir or (spec.get("data_dir") if data == spec.get("data") else None)


def _model_from_spec(spec: dict[str, Any], weights: Path | None = None) -> nn.Module:
    """The model a spec describes, built by the spec's task (a classifier, a detector, ...)."""
    return task_of(spec).build(spec, weights)


def export_student(checkpoint: str | Path, fmt: str, out: str | Path, overwrite: bool = False,
                   fold_normalisation: bool = False, push_to_hub: str | None = None) -> dict[str, Any]:
    """Write the student in `fmt` to `out`; for ONNX and TorchScript, also the largest output difference to
    PyTorch on random input.

    Args:
        fold_normalisation: Put the input normalisation into the ONNX / TorchScript graph, so that it takes pixels
            in [0, 1]; without it the graph expects normalised input (the mean and std are in the ONNX metadata).
        push_to_hub: With `fmt="timm"`, also upload the export to this Hub repository (ORG/NAME).
    """
    if push_to_hub and fmt != "timm":
        raise FofakdError("--push-to-hub uploads a timm export; pass --format timm with it.")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter about shape-dependent branches in timm models
        check_export_target(Path(out), overwrite, fmt)
        return _export(checkpoint, fmt, out, fold_normalisation, push_to_hub)


def _run_of(weights: Path) -> dict[str, Any] | None:
    """The config and summary of the run a student.safetensors belongs to (None for a loose export)."""
    import json

    import yaml

    folder = weights.parent
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text())
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None  # a loose export, or a run whose files are gone: the card describes the model alone
    ok = weights.name == "student.safetensors" and isinstance(config, dict) and isinstance(summary, dict)
    return {"config": config, "summary": summary} if ok else None


def check_export_target(out: Path, overwrite: bool, fmt: str = "onnx") -> None:
    """Refuse a file a run owns, or an existing target unless `overwrite`, before anything is loaded: for the file
    formats a folder; for `timm`, a file or a folder holding anything but an earlier timm export."""
    if fmt == "timm":
        if out.exists() and not out.is_dir():
            raise FofakdError(f"--out '{out}' is a file; --format timm writes a folder (config.json, "
                              "model.safetensors, README.md).")
        if out.is_dir() and any(out.iterdir()):
            if not (out / "config.json").is_file():
                raise FofakdError(f"'{out}' holds files that are not a timm export; choose a new or empty --out.")
            if not overwrite:
                raise FofakdError(f"'{out}' already holds a timm export; pass --overwrite to replace it, or choose "
                                  "another --out.")
    else:
        check_target(out, overwrite)
    run = RunDir(out.absolute().parent.parent if out.absolute().parent.name in RUN_DIRS else out.absolute().parent)
    relative = out.absolute().relative_to(run.path)
    owned = relative.parts[0] in (*RUN_FILES, *RUN_DIRS, MARKER)
    if owned and run.is_fofakd_run():
        raise FofakdError(f"'{out}' belongs to the run in '{run.path}' (it resumes, evaluates or exports from it); "
                          "choose an --out outside the run's own files.")


def _export(checkpoint: str | Path, fmt: str, out: str | Path, fold_normalisation: bool = False,
            push_to_hub: str | None = None) -> dict[str, Any]:
    if fmt not in FORMATS:
        raise FofakdError(f"export format '{fmt}' is not known; use one of {', '.join(FORMATS)}.")
    model, spec, weights = load_student(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"format": fmt, "out": str(out), "model": spec["model"]}
    if fmt == "safetensors":  # one file: the spec travels in its metadata
        write_weights(model, spec, out)
        return report
    task = task_of(spec)
    if fmt == "timm":
        if task.export_folder is None:
            raise FofakdError(f"--format timm exports classifiers; export a {spec['task']} model as onnx or "
                              "safetensors.")
        run = _run_of(weights)
        write_folder_atomic(out, lambda tmp: report.update(task.export_folder(model, spec, tmp, run)))
        if push_to_hub:
            report["pushed"] = task.push(model, spec, run, push_to_hub, out)
        return report

    def write(tmp: Path) -> None:
        report.update(task.export(model, spec, fmt, tmp, fold_normalisation))

    write_atomic(out, write)
    return report


def onnxruntime_module() -> ModuleType:
    """onnxruntime, or a clear error naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise FofakdError("ONNX export needs onnx and onnxruntime; install fofakd[export].") from None
    return onnxruntime
