"""The per-image pipeline of the ImageNet-LT / iNaturalist recipes, with torchvision on PIL images.

Training: RandomResizedCrop(size) (scale 0.08-1, aspect 3/4-4/3), horizontal
flip, ColorJitter(brightness 0.4, contrast 0.4, saturation 0.4). Test:
Resize(resize) of the shorter side, CenterCrop(size). size 224 / resize 256
are the papers'; smaller values give quick runs on tiny images.

Both end in a uint8 [H, W, 3] tensor, not normalised floats: a batch then
crosses from the worker processes, and to the GPU, at a quarter of the bytes,
and is normalised on the device (`tailsam.data.augment.normalize`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

# ImageNet statistics, which torchvision's ResNets and the long-tail papers use for iNaturalist too.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Transform = Callable[[Image.Image], torch.Tensor]


def to_hwc_uint8(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a uint8 [H, W, 3] tensor (a copy; the loader's workers hand it over)."""
    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))


def train_transform(size: int = 224) -> Transform:
    """Random resized crop to size x size, random flip and colour jitter; uint8 HWC out."""
    return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4),
                      to_hwc_uint8])


def test_transform(size: int = 224, resize: int = 256) -> Transform:
    """Shorter side to `resize`, centre crop size x size; uint8 HWC out."""
    return T.Compose([T.Resize(resize), T.CenterCrop(size), to_hwc_uint8])
