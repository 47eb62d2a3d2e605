"""The spec a fofakd weights file carries (model name, arguments, classes, input), read without torch."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import FofakdError, first_line

SPEC_KEY = "fofakd_spec"  # safetensors metadata entry holding the JSON spec a model is rebuilt from


def read_embedded_spec(path: str | Path) -> dict | None:
    """The fofakd spec stored in a .safetensors file's metadata, if any.

    Raises:
        FofakdError: The file is named .safetensors but cannot be read as one, or its spec is damaged.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise FofakdError(f"'{path}' is not a readable safetensors file ({first_line(err, 120)}); it may "
                          "be truncated: copy or export it again.") from None
    return _parse_spec(metadata[SPEC_KEY], path) if SPEC_KEY in metadata else None


def _parse_spec(text: str, source: Path) -> dict:
    try:
        spec = json.loads(text)
    except ValueError:
        spec = None
    if not isinstance(spec, dict) or "model" not in spec:
        raise FofakdError(f"the fofakd spec in '{source}' is damaged (not a JSON model description); export the "
                          "student again with `fofakd export` from its run directory.")
    return spec


TIMM_WEIGHTS = "model.safetensors"  # the weights file of a timm model folder (timm's save_for_hf)


def is_timm_folder(path: str | Path) -> bool:
    """Whether `path` is a timm model folder: config.json and model.safetensors, as `fofakd export --format timm`
    and timm's `save_for_hf` write them (a folder that also holds a fofakd student.safetensors is read as a run)."""
    path = Path(path)
    return (path.is_dir() and (path / "config.json").is_file() and (path / TIMM_WEIGHTS).is_file()
            and not (path / "student.safetensors").is_file())


def timm_folder_spec(path: str | Path) -> dict:
    """A fofakd spec read from a timm model folder's config.json (architecture, arguments, classes, input,
    normalisation and label names)."""
    config_file = Path(path) / "config.json"
    try:
        config = json.loads(config_file.read_text())
        pretrained = config.get("pretrained_cfg", {})
        args = dict(config.get("model_args", {}))
        in_chans, height = pretrained["input_size"][0], pretrained["input_size"][-1]
        spec = {"task": "classification", "model": config["architecture"], "num_classes": config["num_classes"],
                "in_chans": args.pop("in_chans", in_chans), "img_size": height,
                "kwargs": {k: v for k, v in args.items() if k not in ("num_classes", "img_size")},
                "mean": list(pretrained["mean"]), "std": list(pretrained["std"])}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        raise FofakdError(f"'{config_file}' is not a timm model config (architecture, num_classes, pretrained_cfg "
                          "with input_size, mean and std); export the model again.") from None
    names = config.get("label_names")
    if isinstance(names, list) and len(names) == spec["num_classes"]:
        spec["class_names"] = names
    return spec


def checkpoint_spec(path: str | Path) -> dict | None:
    """The spec of a fofakd weights file, run directory or timm model folder (embedded, else the student.json
    beside it, else the folder's config.json), if any."""
    path = Path(path)
    if is_timm_folder(path):
        return timm_folder_spec(path)
    weights = path / "student.safetensors" if path.is_dir() else path
    spec = read_embedded_spec(weights)
    beside = weights.with_name("student.json")
    if spec is None and weights.name == "student.safetensors" and beside.is_file():
        spec = _parse_spec(beside.read_text(errors="replace"), beside)
    return spec
