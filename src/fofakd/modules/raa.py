"""Region-Aware Attention (docs/method.md, Region-aware attention): the student's stages attend to each other by region."""
from __future__ import annotations

import math
import typing
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FofakdError
from .init import init_weights

# The RAA's positional encoding: fixed sine/cosine, the FOFA authors' batch-indexed one, or none.
PosEmbed = Literal["fixed", "reference", "none"]
POS_EMBED_MODES = typing.get_args(PosEmbed)
ENTROPY_SAMPLES = 8  # samples per step the attention-entropy diagnostic is estimated on
NARROW_PATCH = 4  # patch widths below this are cut from channels-first maps through a channels-last copy


def sinusoidal_encoding(positions: int, dim: int) -> torch.Tensor:
    """The transformer sine/cosine encoding, (positions, dim)."""
    position = torch.arange(positions, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    enc = torch.zeros(positions, dim)
    enc[:, 0::2] = torch.sin(position * div)
    enc[:, 1::2] = torch.cos(position * div[: dim // 2])
    return enc


class RegionPatchify(nn.Module):
    """Cuts one stage map into a g x g grid of region tokens of width `dim`.

    The map is resized (nearest) up to a multiple of g when needed, then a conv with kernel = stride = patch size
    turns each region into one token. The conv is evaluated as one matrix product over the cut-out patches: the
    same weights and result, but on a CPU 1.2-2.6x faster forward and backward (docs/speed.md); `as_product = False`
    calls the convolution instead.
    """

    def __init__(self, channels: int, grid: tuple[int, int], regions_per_side: int, dim: int):
        super().__init__()
        g = regions_per_side
        self.grid = tuple(grid)
        self.patch = (math.ceil(grid[0] / g), math.ceil(grid[1] / g))
        self.size = (self.patch[0] * g, self.patch[1] * g)
        self.needs_resize = tuple(grid) != self.size
        self.proj = nn.Conv2d(channels, dim, kernel_size=self.patch, stride=self.patch)
        self.as_product = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.grid:
            # A map of another size than the one built for (detectors on variable image sizes) is resampled.
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        elif self.needs_resize:
            x = F.interpolate(x, size=self.size, mode="nearest")
        if not self.as_product:
            return self.proj(x).flatten(2).transpose(1, 2)
        batch, channels, height, width = x.shape
        (ph, pw), (gh, gw) = self.patch, (height // self.patch[0], width // self.patch[1])
        weight = self.proj.weight
        if x.is_contiguous() and pw >= NARROW_PATCH:
            patches = x.reshape(batch, channels, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5)
        else:  # channels-last memory, or patches so narrow that cutting them out of a channels-first map copies a
            # few floats at a time: cut along whole pixel rows (pw * C floats) and order the weight to match
            patches = x.permute(0, 2, 3, 1).reshape(batch, gh, ph, gw, pw, channels).permute(0, 1, 3, 2, 4, 5)
            weight = weight.permute(0, 2, 3, 1)
        return F.linear(patches.reshape(batch, gh * gw, -1), weight.flatten(1), self.proj.bias)


class RegionAwareAttention(nn.Module):
    """Region-aware attention over all student stages.

    Each stage becomes `num_queries / num_stages` region tokens; one multi-head attention lets every region token
    attend to every region of every stage. As in the reference there is no output projection, residual or MLP.

    Args:
        stage_channels: Channels of each student stage map.
        stage_grids: (H, W) of each student stage map.
        num_queries: Region tokens over all stages (64 = 16 per stage for 4 stages).
        dim: Attention width.
        num_heads: Attention heads.
        pos_embed: "fixed" (sinusoidal over token positions, fofakd's default), "reference" (the reference code's
            encoding indexed by batch position, so tokens get none) or "none".
    """

    def __init__(
        self,
        stage_channels: Sequence[int],
        stage_grids: Sequence[tuple[int, int]],
        num_queries: int = 64,
        dim: int = 512,
        num_heads: int = 8,
        pos_embed: str = "fixed",
    ):
        super().__init__()
        num_stages = len(stage_channels)
        per_stage = num_queries // num_stages
        side = math.isqrt(per_stage)
        if per_stage * num_stages != num_queries or side * side != per_stage:
            raise FofakdError(
                f"num_queries={num_queries} must give each of the {num_stages} stages a square number of regions "
                f"(e.g. {4 * 4 * num_stages}); change num_queries."
            )
        if dim % num_heads:
            raise FofakdError(f"dim={dim} must be divisible by heads={num_heads}; change one of them.")
        if pos_embed not in POS_EMBED_MODES:
            raise FofakdError(f"pos_embed '{pos_embed}' is not known; use one of {', '.join(POS_EMBED_MODES)}.")
        self.regions_per_side = side
        self.tokens_per_stage = per_stage
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.pos_embed = pos_embed
        self.patchify = nn.ModuleList(
            RegionPatchify(c, tuple(g), side, dim) for c, g in zip(stage_channels, stage_grids)
        )
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.register_buffer("token_encoding", sinusoidal_encoding(num_queries, dim), persistent=False)
        self.last_entropy: torch.Tensor | None = None
        init_weights(self)

    def _encoding(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
        if self.pos_embed == "fixed":
            return self.token_encoding.to(dtype).unsqueeze(0)
        if self.pos_embed == "reference":
            # The reference indexes its encoding by batch position: one vector per sample, shared by all tokens.
            return sinusoidal_encoding(batch, self.token_encoding.shape[1]).to(device, dtype).unsqueeze(1)
        return None

    def forward(
        self, stage_maps: Sequence[torch.Tensor], return_attention: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
        """Stage maps (B, C_i, H_i, W_i) -> per-stage region tokens (B, N_q / num_stages, dim).

        With `return_attention`, also the attention weights (B, heads, N_q, N_q).
        """
        tokens = torch.cat([p(x) for p, x in zip(self.patchify, stage_maps)], dim=1)
        batch, length, dim = tokens.shape
        x = self.norm(tokens)
        q = self.q(x)
        k, v = self.kv(x).chunk(2, dim=-1)
        encoding = self._encoding(batch, x.device, x.dtype)
        if encoding is not None:
            q, k = q + encoding, k + encoding
        heads = self.num_heads
        q, k, v = (t.reshape(batch, length, heads, dim // heads).transpose(1, 2) for t in (q, k, v))
        if return_attention:
            attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
            out = attn @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        if self.training:
            with torch.no_grad():  # diagnostics: mean entropy (nats) of each query's attention over the N_q regions,
                # estimated on the batch's first samples so that it costs little next to the attention itself
                n = ENTROPY_SAMPLES
                log_attn = (q[:n] @ k[:n].transpose(-2, -1) * self.scale).float().log_softmax(dim=-1)
                self.last_entropy = -(log_attn.exp() * log_attn).sum(-1).mean()
        out = out.transpose(1, 2).reshape(batch, length, dim)
        chunks = list(out.split(self.tokens_per_stage, dim=1))
        return (chunks, attn) if return_attention else chunks
