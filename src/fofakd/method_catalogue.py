"""The built-in methods' options, readable without importing torch, so that a bad method flag fails at once.

`method_catalogue.json` is generated from the live registry (`python -m fofakd.methods.catalogue`); a test keeps
the two equal. Methods registered by a user's own code are not in it and are checked when they are built.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path

from .errors import FofakdError

CATALOGUE = Path(__file__).with_name("method_catalogue.json")


def load_catalogue() -> dict[str, dict[str, object]]:
    """{method: {option: default}} of the built-in methods."""
    return json.loads(CATALOGUE.read_text())


def check_method(name: str, options: dict[str, object], known_methods: dict[str, dict[str, object]]) -> None:
    """Refuse an unknown method, an unknown option or an option value of the wrong kind, with one sentence."""
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
    for key, value in options.items():
        check_option_type(name, key, value, known[key])


def check_option_type(method: str, key: str, value: object, default: object) -> None:
    """A single value for an option whose default is a number, a string or a flag must be of the same kind (ints
    widen to floats); options whose default is None, and lists, are left to the method."""
    if default is None or value is None or isinstance(value, (list, tuple, dict)):
        return  # several kinds allowed (OFA's gamma takes one number or one per branch): the method checks
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (isinstance(default, float) or isinstance(value, int))
        kind = "a number" if isinstance(default, float) else "an integer"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "a string"
    else:
        return
    if not ok:
        raise FofakdError(f"method '{method}' option '{key}' must be {kind}, got {value!r}; fix its value.")
