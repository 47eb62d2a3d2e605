"""Safe checkpoint reading and loading into timm models (never unpickles arbitrary objects)."""
from __future__ import annotations

import hashlib
import pickle
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from timm.models import adapt_input_conv
from torch import nn

from ..errors import FofakdError
from .spec_file import TIMM_WEIGHTS, is_timm_folder

# Keys under which training scripts (timm's train.py, torchvision references, fofakd, Lightning) nest weights.
_NESTED_KEYS = ("state_dict", "model", "student", "module", "net")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")


def state_fingerprint(module: nn.Module) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and values), to tell two sets of weights apart."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a flat tensor state dict from a .safetensors file or a torch checkpoint (weights-only unpickling).

    A fofakd run directory is accepted too: its `student.safetensors` is read.
    """
    path = Path(path)
    if path.is_dir():
        path = path / (TIMM_WEIGHTS if is_timm_folder(path) else "student.safetensors")
    if not path.is_file():
        raise FofakdError(f"checkpoint '{path}' does not exist; check the path.")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise FofakdError(f"checkpoint '{path}' is not a readable safetensors file ({err}); re-export it.") from None
    return _unwrap(safe_torch_load(path), path)


def safe_torch_load(path: Path) -> object:
    """`torch.load` with `weights_only=True`: tensors and plain containers only, never arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower():  # no refused class or function in it: the bytes are not a pickle
            raise FofakdError(f"'{path}' is not a PyTorch checkpoint (it does not unpickle); pass a .pt/.pth state "
                              "dict, a .safetensors file or a fofakd run directory.") from None
        raise FofakdError(
            f"checkpoint '{path}' holds Python objects other than tensors and was not loaded, since unpickling "
            "them could run arbitrary code; save a plain state dict or a .safetensors file instead."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise FofakdError(f"checkpoint '{path}' is truncated or corrupt ({err}); use an intact copy.") from None


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(obj, dict) and not _is_tensor_dict(obj):
        nested = next((obj[k] for k in _NESTED_KEYS if isinstance(obj.get(k), dict)), None)
        if nested is None:
            raise FofakdError(
                f"checkpoint '{path}' holds no model weights (top-level keys: {sorted(obj)[:8]}); "
                "pass a state dict or a file saved by timm, torchvision or fofakd."
            )
        obj = nested
    if not isinstance(obj, dict) or not obj:
        raise FofakdError(f"checkpoint '{path}' holds no model weights; pass a state dict or a .safetensors file.")
    state = dict(obj)
    for prefix in _WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _is_tensor_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _as_names(value: object) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def load_weights(model: nn.Module, path: str | Path, reset_head: bool = False) -> None:
    """Load checkpoint weights into a timm model.

    The model's own timm conversion (`checkpoint_filter_fn`, e.g. position-embedding resampling for another image
    size) is applied, a first conv with another channel count is adapted, and a classifier of another size is an
    error unless `reset_head` is set, in which case the model keeps its freshly initialised head.
    """
    state = read_state_dict(path)
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            state = filter_fn(state, model)
        except Exception:  # noqa: BLE001 -- timm filters expect their own formats; fall back to the raw dict
            pass
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    own = model.state_dict()
    for conv in _as_names(cfg.get("first_conv")):
        key = f"{conv}.weight"
        if key in state and key in own and state[key].shape[1] != own[key].shape[1]:
            state[key] = adapt_input_conv(own[key].shape[1], state[key])
    head_keys = {f"{c}.{p}" for c in _as_names(cfg.get("classifier")) for p in ("weight", "bias")}
    for key in head_keys & state.keys() & own.keys():
        if state[key].shape != own[key].shape:
            if not reset_head:
                raise FofakdError(
                    f"checkpoint '{path}' has a {state[key].shape[0]}-class classifier but the model was built for "
                    f"{own[key].shape[0]} classes; build it with num_classes={state[key].shape[0]} or reset the head."
                )
            del state[key]
    mismatched = [k for k in state.keys() & own.keys() if state[k].shape != own[k].shape]
    missing = [
        k for k in own.keys() - state.keys()
        if not (reset_head and k in head_keys) and not k.endswith("num_batches_tracked")
    ]
    unexpected = sorted(state.keys() - own.keys())
    if mismatched or missing or unexpected:
        detail = "; ".join(
            f"{label}: {', '.join(sorted(keys)[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("shape mismatch", mismatched), ("missing", missing), ("unexpected", unexpected))
            if keys
        )
        raise FofakdError(
            f"checkpoint '{path}' does not fit {type(model).__name__} ({detail}); check the model name and its options."
        )
    model.load_state_dict(state, strict=False)
