"""Writes fofakd/method_options.json from the registry: `python -m fofakd.methods.write_method_options`."""
from __future__ import annotations

import json

from ..method_validation import METHOD_OPTIONS
from .registry import list_methods, method_option_specs


def live_method_options() -> dict[str, dict[str, object]]:
    """The registry's methods and their options' defaults, kinds and ranges, as JSON holds them."""
    return json.loads(json.dumps({name: method_option_specs(name) for name in list_methods()}))


if __name__ == "__main__":
    METHOD_OPTIONS.write_text(json.dumps(live_method_options(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {METHOD_OPTIONS}")
