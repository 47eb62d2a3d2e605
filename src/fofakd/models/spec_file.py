"""The spec a fofakd weights file carries (model name, arguments, classes, input), read without torch."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import FofakdError

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
        raise FofakdError(f"'{path}' is not a readable safetensors file ({str(err).splitlines()[0][:120]}); it may "
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


def checkpoint_spec(path: str | Path) -> dict | None:
    """The spec of a fofakd weights file or run directory (embedded, else the student.json beside it), if any."""
    path = Path(path)
    weights = path / "student.safetensors" if path.is_dir() else path
    spec = read_embedded_spec(weights)
    beside = weights.with_name("student.json")
    if spec is None and weights.name == "student.safetensors" and beside.is_file():
        spec = _parse_spec(beside.read_text(errors="replace"), beside)
    return spec
