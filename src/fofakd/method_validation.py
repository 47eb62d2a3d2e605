"""The built-in methods' options, readable without importing torch, so that a bad method flag fails at once.

`method_options.json` is generated from the live registry (`python -m fofakd.methods.write_method_options`); a
test keeps the two equal. Methods registered by a user's own code are not in it and are checked when they are built.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from .errors import FofakdError
from .options import Range, check_option

METHOD_OPTIONS = Path(__file__).with_name("method_options.json")


def load_method_options() -> dict[str, dict[str, dict[str, Any]]]:
    """{method: {option: {"default", "kinds", "choices", "range"}}} of the built-in methods."""
    return json.loads(METHOD_OPTIONS.read_text())


def check_method(name: str, options: dict[str, Any], known_methods: dict[str, dict[str, dict[str, Any]]]
                 ) -> dict[str, Any]:
    """Refuse an unknown method, an unknown option, or an option value of the wrong kind or out of its range, with
    one sentence; return the options as their kinds (ints widened to floats where a number is declared)."""
    if name not in known_methods:
        close = difflib.get_close_matches(name, list(known_methods), n=3)
        hint = f"did you mean {', '.join(close)}" if close else f"choose one of {', '.join(sorted(known_methods))}"
        raise FofakdError(f"method '{name}' is not known; {hint}.")
    known = known_methods[name]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise FofakdError(
            f"method '{name}' has no option {', '.join(unknown)}; its options are {', '.join(sorted(known))}."
        )
    return {key: check_option(f"method '{name}' option '{key}'", value, known[key]["kinds"],
                              Range(*known[key]["range"]) if known[key]["range"] else None, known[key].get("choices"))
            for key, value in options.items()}
