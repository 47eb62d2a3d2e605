"""Where fofakd keeps downloaded and generated data."""
from __future__ import annotations

import os
from pathlib import Path


def default_root() -> Path:
    """The data cache: $FOFAKD_DATA, else ~/.cache/fofakd/data."""
    return Path(os.environ.get("FOFAKD_DATA", Path.home() / ".cache" / "fofakd" / "data"))
