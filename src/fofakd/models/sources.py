"""Model names with a source, as timm reads them: `local-dir:FOLDER` (a timm model folder) and `hf-hub:ORG/NAME`."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import FofakdError, first_line


def resolve_source(name: str) -> tuple[str, dict] | None:
    """(timm architecture, saved model arguments) of a `local-dir:` or `hf-hub:` name (read from its config.json,
    which is fetched for a hub name), or None for a plain timm model name. The arguments leave out what fofakd sets
    from the data (classes, channels, input size).

    Raises:
        FofakdError: An unknown source, a folder without config.json, or a hub model that cannot be fetched (no
            network, offline mode, or no such repository), in one sentence.
    """
    from timm.models import load_model_config_from_hf, parse_model_name

    try:
        source, model_id = parse_model_name(name)
    except ValueError as err:
        raise FofakdError(f"model '{name}': {err}") from None
    if source is None:
        return None
    if source == "local-dir":
        folder = Path(model_id).expanduser()
        try:
            config = json.loads((folder / "config.json").read_text())
            architecture, args = config["architecture"], config.get("model_args", {})
        except (OSError, ValueError, KeyError, TypeError):
            raise FofakdError(f"'{folder}' holds no readable config.json naming an architecture, so '{name}' names no "
                              "model; point local-dir: at a timm model folder (as `fofakd export --format timm` or "
                              "timm's save_for_hf write it).") from None
    else:
        _offline_unless_reachable()
        try:
            _, architecture, args = load_model_config_from_hf(model_id)
        except Exception as err:  # huggingface_hub raises many kinds: offline mode, no network, no such repository
            reason = first_line(err, 1000).split(". ")[0].rstrip(".")[:160]
            raise FofakdError(f"could not fetch '{name}' from the Hugging Face Hub ({type(err).__name__}: {reason}); "
                              "check the name and the network, or download the model and pass local-dir:FOLDER."
                              ) from None
    return architecture, {k: v for k, v in (args or {}).items() if k not in ("num_classes", "in_chans", "img_size")}


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face Hub's endpoint accepts a connection within `timeout_s` (False in offline mode)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _offline_unless_reachable() -> None:
    """Put huggingface_hub in offline mode (its local cache only) when the Hub cannot be reached, so that a machine
    without network gets its answer in seconds instead of after a minute of retries; a cached model still loads."""
    from huggingface_hub import constants

    if not hub_reachable():
        constants.HF_HUB_OFFLINE = True
