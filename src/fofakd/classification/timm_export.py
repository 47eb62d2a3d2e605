"""A trained classifier as a timm model folder (config.json, model.safetensors, README.md), written with timm's own
helpers, so that plain timm loads it: `timm.create_model("local-dir:DIR", pretrained=True)`."""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from timm.data import DEFAULT_CROP_PCT
from torch import nn

from ..errors import FofakdError, first_line

# Entries of the timm pretrained config that name where the architecture's own weights came from; the export holds
# other weights, so they are dropped rather than mislead.
_SOURCE_KEYS = ("tag", "hf_hub_id", "url", "file", "license", "paper_ids", "paper_name", "origin_url", "notes",
                "source", "hf_hub_filename")


def data_config(spec: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing the run used, in timm's terms: image folders go through timm's eval transform (resize by
    1 / 0.875, centre crop); in-memory data sets are resized to the input size without a crop."""
    return {"input_size": (spec["in_chans"], spec["img_size"], spec["img_size"]), "mean": tuple(spec["mean"]),
            "std": tuple(spec["std"]), "interpolation": "bilinear",
            "crop_pct": DEFAULT_CROP_PCT if _files_of_images(spec) else 1.0, "crop_mode": "center"}


def _files_of_images(spec: dict[str, Any]) -> bool:
    """Whether the run read image files through timm's eval transform (image folders, Hugging Face data sets)."""
    data = str(spec.get("data", ""))
    return data == "imagefolder" or data.startswith("hfds/")


def export_timm(model: nn.Module, spec: dict[str, Any], out: Path, run: dict[str, Any] | None) -> dict[str, Any]:
    """Write `model` into the folder `out` as timm saves a model for the Hugging Face Hub.

    Args:
        model: The trained classifier.
        spec: Its fofakd spec (model name, arguments, classes, input, normalisation).
        out: An empty folder.
        run: The run's config and summary (for the model card), when the student came from a run directory.
    """
    from timm.models import save_for_hf
    from timm.models._hub import generate_readme  # the model card writer of push_to_hf_hub; not re-exported

    preprocessing = data_config(spec)
    # In the model's pretrained config too: timm releases before save_for_hf took `data_config` save that one.
    model.pretrained_cfg = {**{k: v for k, v in model.pretrained_cfg.items() if k not in _SOURCE_KEYS},
                            **preprocessing}
    names = list(spec.get("class_names") or [])
    extra = {"data_config": preprocessing} if "data_config" in inspect.signature(save_for_hf).parameters else {}
    save_for_hf(model, str(out), model_config={"label_names": names} if names else None, safe_serialization=True,
                **extra)
    (out / "README.md").write_text(generate_readme(model_card(spec, run), out.name.lstrip(".").removesuffix(".tmp")))
    return {"files": sorted(p.name for p in out.iterdir()), "data_config": data_config(spec),
            "load_with": "timm.create_model('local-dir:OUT', pretrained=True)"}


def model_card(spec: dict[str, Any], run: dict[str, Any] | None) -> dict[str, Any]:
    """timm's model-card fields: what the model is, how it was distilled and what it scored."""
    details: dict[str, Any] = {"Model type": "Image classification", "Architecture": spec["model"],
                               "Model arguments": json.dumps(spec.get("kwargs", {})),
                               "Input": f"{spec['in_chans']} x {spec['img_size']} x {spec['img_size']}",
                               "Classes": len(spec.get("class_names") or []) or spec["num_classes"],
                               "Dataset": spec.get("data", "unknown")}
    if run is not None:
        config, summary = run["config"], run["summary"]
        if config.get("method") not in (None, "scratch"):
            details["Teacher"] = config.get("teacher") or config.get("teacher_checkpoint")
        details["Method"] = config.get("method", "scratch")
        details["Recipe"] = {k: config[k] for k in ("epochs", "batch_size", "opt", "lr", "weight_decay", "seed")
                             if k in config}
        details["Test top-1 (%)"] = summary.get("test_top1")
        details[f"Made by fofakd {summary.get('command', 'distill')} --config with"] = {
            k: json.dumps(v) for k, v in config.items() if k != "out"}
    usage = ("```python\nimport timm\n\nmodel = timm.create_model('local-dir:PATH_TO_THIS_FOLDER', pretrained=True)\n"
             "config = timm.data.resolve_data_config(model=model)\n"
             "transform = timm.data.create_transform(**config)\n```\n")
    return {"description": "A student trained with fofakd (feature-based heterogeneous knowledge distillation).",
            "details": details, "usage": usage, "license": "other"}


def push_timm(model: nn.Module, spec: dict[str, Any], run: dict[str, Any] | None, repo_id: str, folder: Path) -> str:
    """Upload the export to the Hub repository `repo_id` with timm's `push_to_hf_hub` (the same weights, config
    and card as `folder`); returns the commit URL.

    Raises:
        FofakdError: The Hub cannot be reached or refuses the upload; the local export in `folder` stays.
    """
    from timm.models import push_to_hf_hub

    from ..models.sources import hub_reachable

    kept = (f"the local export in '{folder}' is kept; upload it later with `huggingface-cli upload {repo_id} "
            f"{folder}`")
    if not hub_reachable():
        raise FofakdError(f"could not reach the Hugging Face Hub to push to '{repo_id}' (offline, or no network); "
                          f"{kept}.")
    names = list(spec.get("class_names") or [])
    try:
        return str(push_to_hf_hub(model, repo_id, model_config={"label_names": names} if names else None,
                                  model_card=model_card(spec, run), data_config=data_config(spec),
                                  safe_serialization=True))
    except Exception as err:  # huggingface_hub raises many kinds: no token, no permission, a network error
        reason = first_line(err)
        raise FofakdError(f"could not push to '{repo_id}' ({type(err).__name__}: {reason}); {kept}.") from None

