"""Per-batch augmentation of uint8 image tensors, with randomness from an explicit generator."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from ..errors import FofakdError


@dataclass
class AugmentConfig:
    """Augmentation options of a recipe.

    Attributes:
        crop_padding: Pad by this many pixels (reflect) and crop back at random; 0 disables.
        hflip: Probability of a horizontal flip.
        randaugment: torchvision RandAugment magnitude (0-30); None disables.
        reprob: Random-erasing probability (timm's RandomErasing, per sample).
        rrc_scale: Random-resized crop with this smallest area fraction, replacing the padded crop; None disables.
    """

    crop_padding: int = 0
    hflip: float = 0.0
    randaugment: int | None = None
    reprob: float = 0.0
    rrc_scale: float | None = None

    @classmethod
    def from_config(cls, cfg) -> "AugmentConfig":
        """The augmentation options of a run config (a ClassificationConfig or anything with the same fields)."""
        return cls(cfg.crop_padding, cfg.hflip, cfg.randaugment, cfg.reprob, cfg.rrc_scale)

    def __post_init__(self) -> None:
        if self.rrc_scale is not None and not 0 < self.rrc_scale <= 1:
            raise FofakdError(f"rrc_scale must be in (0, 1], got {self.rrc_scale}; e.g. 0.08 as timm uses.")


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random crops of a padded batch, vectorised."""
    batch, _, h, w = images.shape
    padded = F.pad(images, (padding,) * 4, mode="constant")
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None]).to(images.device)  # (B, h)
    cols = (dx[:, None] + torch.arange(w)[None]).to(images.device)  # (B, w)
    index = torch.arange(batch, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_hflip(images: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(len(images), generator=generator) < probability).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def per_sample(images: torch.Tensor, transform: v2.Transform, generator: torch.Generator) -> torch.Tensor:
    """Apply a torchvision transform to each image with randomness drawn from `generator`."""
    # torchvision draws from the global RNG; fork it so the run's own stream is untouched.
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.stack([transform(img) for img in images])


def augment_uint8(images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Geometric and photometric augmentation on a uint8 batch (B, C, H, W)."""
    if cfg.rrc_scale is not None:
        crop = v2.RandomResizedCrop(tuple(images.shape[-2:]), scale=(cfg.rrc_scale, 1.0), antialias=True)
        images = per_sample(images, crop, generator)
    elif cfg.crop_padding:
        images = random_crop(images, cfg.crop_padding, generator)
    if cfg.hflip:
        images = random_hflip(images, cfg.hflip, generator)
    if cfg.randaugment is not None:
        images = per_sample(images, v2.RandAugment(magnitude=cfg.randaugment), generator)
    return images


def to_model_input(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float], size: int | None
) -> torch.Tensor:
    """uint8 (B, C, H, W) -> normalised float, resized (bilinear) to `size` when it differs."""
    x = images.float().div_(255.0)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean_t = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x - mean_t) / std_t
