"""Per-batch augmentation of uint8 image tensors, with randomness from an explicit generator."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms import v2


@dataclass
class AugmentConfig:
    """Augmentation options of a recipe.

    Attributes:
        crop_padding: Pad by this many pixels (reflect) and crop back at random; 0 disables.
        hflip: Probability of a horizontal flip.
        randaugment: torchvision RandAugment magnitude (0-30); None disables.
        reprob: Random-erasing probability (timm's RandomErasing, per sample).
    """

    crop_padding: int = 0
    hflip: float = 0.0
    randaugment: int | None = None
    reprob: float = 0.0


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


def augment_uint8(images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Geometric and photometric augmentation on a uint8 batch (B, C, H, W)."""
    if cfg.crop_padding:
        images = random_crop(images, cfg.crop_padding, generator)
    if cfg.hflip:
        images = random_hflip(images, cfg.hflip, generator)
    if cfg.randaugment is not None:
        # torchvision draws its ops from the global RNG; fork it so the run's own stream is untouched.
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            rand_augment = v2.RandAugment(magnitude=cfg.randaugment)
            images = torch.stack([rand_augment(img) for img in images])
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
