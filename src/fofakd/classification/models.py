"""A classification run's models from its config: teacher and student follow the data (classes, channels, size)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..data.bundle import DataBundle
from ..errors import FofakdError
from ..models import create_model
from ..models.factory import check_input_size
from ..models.sources import resolve_source
from ..models.spec_file import checkpoint_spec
from .config import ClassificationConfig, check_models


def student_spec(name: str, kwargs: dict[str, Any], data: DataBundle, cfg: ClassificationConfig) -> dict[str, Any]:
    """Everything needed to rebuild the student, feed it and name its outputs (saved with its weights). A
    `local-dir:` or `hf-hub:` name is recorded as the architecture and arguments it resolved to, so that the run's
    student rebuilds without the folder or the network."""
    source = resolve_source(name)
    if source is not None:
        name, kwargs = source[0], {**source[1], **kwargs}
    spec = {
        "task": "classification", "model": name, "num_classes": data.num_classes, "in_chans": data.in_chans,
        "img_size": data.img_size,
        "kwargs": dict(kwargs), "mean": list(data.mean), "std": list(data.std), "data": cfg.data,
        "class_names": list(data.class_names),
    }
    if cfg.data == "imagefolder" or (cfg.data.startswith("hfds/") and cfg.data_dir):
        spec["data_dir"] = str(Path(cfg.data_dir).resolve())  # so that `fofakd eval` finds the data without it
    return spec


def model_from_spec(spec: dict[str, Any], checkpoint: str | Path | None = None) -> nn.Module:
    return create_model(spec["model"], num_classes=spec["num_classes"], in_chans=spec["in_chans"],
                        img_size=spec["img_size"], checkpoint=checkpoint, **spec.get("kwargs", {}))


def build_run_models(cfg: ClassificationConfig, command: str,
                     data: DataBundle) -> tuple[nn.Module | None, nn.Module, dict]:
    """(teacher or None, student, student spec) for `fofakd train` or `fofakd distill`."""
    common = dict(num_classes=data.num_classes, in_chans=data.in_chans, img_size=data.img_size,
                  pretrained=cfg.pretrained, reset_head=cfg.reset_head)
    for flag, kwargs in (("model", cfg.model_kwargs), ("teacher", cfg.teacher_kwargs), ("student", cfg.student_kwargs)):
        taken = sorted(set(kwargs) & {*common, "checkpoint"})
        if taken:
            raise FofakdError(
                f"--{flag}-kwargs cannot set {', '.join(taken)}: fofakd sets it from the data ({data.num_classes} "
                f"classes, {data.in_chans} channels, {data.img_size} px) or from its own flag; leave it out."
            )
    check_models(cfg, command)
    size = (data.in_chans, data.img_size, data.img_size)
    if command == "train":
        model = create_model(cfg.model, checkpoint=cfg.checkpoint, **common, **cfg.model_kwargs)
        check_input_size(model, size, "model")
        return None, model, student_spec(cfg.model, cfg.model_kwargs, data, cfg)
    teacher_name, teacher_kwargs = cfg.teacher, dict(cfg.teacher_kwargs)
    source = Path(cfg.teacher_checkpoint) if cfg.teacher_checkpoint else None
    trained = checkpoint_spec(source) if source is not None else None
    if trained is not None and teacher_name in (None, trained["model"]):
        teacher_name = trained["model"]
        teacher_kwargs = {**trained.get("kwargs", {}), **teacher_kwargs}
    teacher = create_model(teacher_name, checkpoint=source, **{**common, "reset_head": False}, **teacher_kwargs)
    student = create_model(cfg.student, **{**common, "pretrained": False}, **cfg.student_kwargs)
    check_input_size(teacher, size, "teacher")
    check_input_size(student, size, "student")
    return teacher, student, student_spec(cfg.student, cfg.student_kwargs, data, cfg)
