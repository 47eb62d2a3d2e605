"""The spec a fofakd weights file carries (model name, arguments, classes, input), read without torch."""
from __future__ import annotations

import json
from pathlib import Path

SPEC_KEY = "fofakd_spec"  # safetensors metadata entry holding the JSON spec a model is rebuilt from


def read_embedded_spec(path: str | Path) -> dict | None:
    """The fofakd spec stored in a .safetensors file's metadata, if any."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return None
    return json.loads(metadata[SPEC_KEY]) if SPEC_KEY in metadata else None


def checkpoint_spec(path: str | Path) -> dict | None:
    """The spec of a fofakd weights file or run directory (embedded, else the student.json beside it), if any."""
    path = Path(path)
    weights = path / "student.safetensors" if path.is_dir() else path
    spec = read_embedded_spec(weights)
    if spec is None and weights.name == "student.safetensors" and weights.with_name("student.json").is_file():
        spec = json.loads(weights.with_name("student.json").read_text())
    return spec
