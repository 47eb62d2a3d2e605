"""Where a trained FOFA student's region-aware attention looks, drawn over a few test images."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..classification.config import ClassificationConfig
from ..classification.training import build_run_distiller
from ..data import build_eval_data
from ..engine.checkpoint import load_checkpoint
from ..engine.config import run_task
from ..errors import FofakdError
from ..features.layout import to_map
from ..features.stages import forward_stages
from ..files import check_target, write_atomic


def load_fofa_run(run_dir: str | Path):
    """The FOFA distiller of a run (teacher from its checkpoint, trained parts from checkpoints/last.pt)."""
    path = Path(run_dir) / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    if run_task(state["config"]) != "classification":
        raise FofakdError(f"'{run_dir}' is a detection run; attention maps are drawn for classification fofa runs.")
    cfg = ClassificationConfig(**state["config"])
    if cfg.method != "fofa":
        raise FofakdError(f"'{run_dir}' is a '{cfg.method}' run; attention maps need a fofa run.")
    data = build_eval_data(cfg)
    distiller, _ = build_run_distiller(cfg, "distill", data)
    own = distiller.state_dict()
    distiller.load_state_dict({**{k: v for k, v in own.items() if k.startswith("teacher.")}, **state["distiller"]})
    return distiller.eval(), data


@torch.no_grad()
def stage_attention(distiller, images: torch.Tensor) -> torch.Tensor:
    """(B, num_stages, g, g): the attention all queries pay to each region of each student stage, averaged over
    heads and queries (each stage's map sums to that stage's share of the attention)."""
    _, feats = forward_stages(distiller.student, images, distiller.student_stages)
    maps = [to_map(f, s.grid) for f, s in zip(feats, distiller.student_stages)]
    _, attn = distiller.raa(maps, return_attention=True)  # (B, heads, N, N)
    received = attn.mean(dim=(1, 2))  # (B, N): mean attention each key region receives
    side = distiller.raa.regions_per_side
    return received.view(len(images), len(maps), side, side)


def draw_attention(run_dir: str | Path, out: str | Path, num_images: int = 4, overwrite: bool = False) -> Path:
    """A PNG: one row per test image, the image and one heat map per student stage (`out` is replaced only with
    `overwrite`)."""
    if num_images < 1:
        raise FofakdError(f"--images {num_images} draws nothing; give at least 1.")
    check_target(out, overwrite)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    distiller, data = load_fofa_run(run_dir)
    images, labels = next(iter(data.test))
    images, labels = images[:num_images], labels[:num_images]
    attention = stage_attention(distiller, images)
    stages = attention.shape[1]
    mean, std = torch.tensor(data.mean).view(-1, 1, 1), torch.tensor(data.std).view(-1, 1, 1)
    fig, axes = plt.subplots(len(images), stages + 1, figsize=(2.2 * (stages + 1), 2.2 * len(images)), squeeze=False)
    names = data.class_names
    top = float(attention.max())  # one colour scale for every map, so that maps can be compared
    for row, (image, label) in enumerate(zip(images, labels)):
        picture = (image * std + mean).clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy()
        axes[row, 0].imshow(picture, cmap="gray")
        axes[row, 0].set_title(names[int(label)] if int(label) < len(names) else f"class {int(label)}", fontsize=8)
        for s in range(stages):
            heat = F.interpolate(attention[row, s][None, None], size=image.shape[-2:], mode="nearest")[0, 0]
            ax = axes[row, s + 1]
            ax.imshow(picture, cmap="gray")
            shown = ax.imshow(heat.numpy(), cmap="inferno", alpha=0.6, vmin=0.0, vmax=top)
            ax.set_title(f"stage {s + 1}: {attention[row, s].sum():.0%}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.colorbar(shown, ax=axes[:, 1:].ravel().tolist(), shrink=0.8, label="attention received per region")
    fig.suptitle("region-aware attention received per stage region (share of all attention)", fontsize=9)
    write_atomic(out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return Path(out)
