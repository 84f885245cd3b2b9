"""Batched augmentation on the device: random crop with zero padding, horizontal flip, normalise.

Images stay uint8 NHWC until the last moment. A crop and a flip are one gather
from the zero-padded images, so a whole batch is augmented with a handful of
tensor operations and no per-image Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """Random crop back to the input size after `padding` zero pixels each side; optional flip."""

    padding: int = 4
    flip: bool = True


def pad_images(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad uint8 NHWC images by `padding` pixels on each side of H and W."""
    return F.pad(images, (0, 0, padding, padding, padding, padding)) if padding else images


def draw_crop_flip(n: int, augment: Augment, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random top/left offsets in [0, 2 * padding] and flip flags for `n` images (on the CPU)."""
    span = 2 * augment.padding + 1
    top = torch.randint(span, (n,), generator=generator)
    left = torch.randint(span, (n,), generator=generator)
    flip = torch.randint(2, (n,), generator=generator).bool() if augment.flip else torch.zeros(n, dtype=torch.bool)
    return top, left, flip


def gather_crops(padded: torch.Tensor, index: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                 flip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crops [B, height, width, C] of `padded[index]` at (top, left), mirrored where `flip`.

    Torchvision's order (crop, then flip the crop) is kept: a flipped output column
    j reads crop column width - 1 - j.
    """
    rows = top[:, None] + torch.arange(height, device=padded.device)                    # [B, H]
    cols = torch.arange(width, device=padded.device).expand(len(index), width)          # [B, W]
    cols = left[:, None] + torch.where(flip[:, None], width - 1 - cols, cols)
    return padded[index[:, None, None], rows[:, :, None], cols[:, None, :]]


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *,
              channels_last: bool = False) -> torch.Tensor:
    """uint8 NHWC -> float NCHW, (x / 255 - mean) / std per channel.

    Permuting NHWC storage to NCHW gives channels_last memory for free; only the
    default contiguous layout needs a copy.
    """
    x = images.float().mul_(1.0 / 255).sub_(mean).div_(std).permute(0, 3, 1, 2)
    return x if channels_last else x.contiguous()
