"""Writes fofakd/method_catalogue.json from the registry: `python -m fofakd.methods.catalogue`."""
from __future__ import annotations

import json

from ..method_catalogue import CATALOGUE
from .registry import list_methods, method_option_specs


def live_catalogue() -> dict[str, dict[str, object]]:
    """The registry's methods and their options' defaults, kinds and ranges, as JSON holds them."""
    return json.loads(json.dumps({name: method_option_specs(name) for name in list_methods()}))


if __name__ == "__main__":
    CATALOGUE.write_text(json.dumps(live_catalogue(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {CATALOGUE}")
