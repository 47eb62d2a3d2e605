"""The quick test set (`pytest -m "not slow"`) runs a sample of the exhaustive sweeps; CI runs every case."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import pytest


def quick_sample(cases: Sequence[Any], quick: Callable[[int, Any], bool], ids: Sequence[str] | None = None) -> list:
    """`cases` as pytest params, each case for which `quick(index, case)` is false marked slow."""
    return [pytest.param(*(case if isinstance(case, tuple) else (case,)),
                         marks=() if quick(i, case) else pytest.mark.slow, id=ids[i] if ids else None)
            for i, case in enumerate(cases)]
