"""The two views of PaCo's CIFAR recipe (../shared/METHODS.md section 3.2), as per-image torchvision v2
transforms on uint8 CHW tensors, for `DeviceLoader.with_view_transforms`.

- query: RandomCrop(32, padding 4), horizontal flip, AutoAugment with the CIFAR-10 policy (fill grey 128),
  Cutout of one 16 x 16 hole (its centre uniform, clipped; the hole is black before normalisation, as the
  reference cuts before Normalize);
- key (SimCLR-style): RandomResizedCrop(32, scale 0.2-1), flip, ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8,
  grayscale with p 0.2, Gaussian blur with sigma ~ U[0.1, 2] with p 0.5.
Where they differ from the reference (DeepVoltaire's AutoAugment in PIL): torchvision's CIFAR-10 table is
the paper's, but its solarize magnitudes run 255 -> 0 where the reference's run 256 -> 0, its rotations
take a random sign (the reference's are always positive), its shears interpolate nearest where the
reference's are bicubic, and Sharpness, Equalize and AutoContrast are tensor kernels, not PIL's; the blur
is torchvision's 9-pixel kernel, the reference PIL's radius-sigma filter.
"""

from __future__ import annotations

from typing import Callable

import torch
from torchvision.transforms import v2


def cutout(size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """One size x size hole of zeros at a uniform centre, clipped at the borders (DeVries and Taylor 2017)."""
    def cut(image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        row, col = int(torch.randint(height, ())), int(torch.randint(width, ()))
        out = image.clone()
        out[..., max(row - size // 2, 0):min(row + size // 2, height),
            max(col - size // 2, 0):min(col + size // 2, width)] = 0
        return out

    return cut


def paco_query_view(size: int = 32) -> Callable[[torch.Tensor], torch.Tensor]:
    return v2.Compose([v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip(),
                       v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10, fill=128), cutout(size // 2)])


def simclr_key_view(size: int = 32) -> Callable[[torch.Tensor], torch.Tensor]:
    return v2.Compose([v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True), v2.RandomHorizontalFlip(),
                       v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), v2.RandomGrayscale(p=0.2),
                       v2.RandomApply([v2.GaussianBlur(9, sigma=(0.1, 2.0))], p=0.5)])
