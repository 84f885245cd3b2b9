"""The CIFAR ResNet-34 of GLMC and the SAM paper's GLMC rows (21.3M parameters with a linear head).

A 3x3 stride-1 stem (64 channels) with BatchNorm and ReLU and no max-pool, then
basic blocks in stages of 3, 4, 6 and 3 with 64, 128, 256 and 512 channels
(strides 1, 2, 2, 2), a projection shortcut (1x1 conv and BatchNorm) where the
shape changes, global average pooling and a head chosen by name. PyTorch's
default initialisation, as the reference keeps it.
"""

from __future__ import annotations

import torch
from torch import nn

from tailsam.models.heads import build_head
from tailsam.models.registry import MODELS
from tailsam.models.resnet_cifar import BasicBlock

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))   # (channels, blocks, stride of the first)


class CifarResNet34(nn.Module):
    """ResNet-34 for 32x32 images; `features(x)` gives the pooled 512-d features, `head` the logits."""

    def __init__(self, num_classes: int, head: str = "linear", in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False),
                                  nn.BatchNorm2d(64), nn.ReLU())
        blocks, width = [], 64
        for channels, count, stride in STAGES:
            for i in range(count):
                blocks.append(BasicBlock(width, channels, stride if i == 0 else 1, projection=True))
                width = channels
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = width
        self.head = build_head(head, width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


MODELS.register("resnet34_cifar", params=21_282_122, input_size=(3, 32, 32),
                paper="Du et al. 2023, GLMC (their CIFAR ResNet-34; the SAM paper's GLMC+SAM rows)")(CifarResNet34)
