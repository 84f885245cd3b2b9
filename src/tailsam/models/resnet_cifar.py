"""ResNets for 32x32 images (He et al. 2016, Sec. 4.2), as used by LDAM-DRW and the SAM paper.

Depth 6n + 2: a 3x3 stem, three stages of n basic blocks with 16, 32 and 64
channels (the 2nd and 3rd stages halve the resolution), global average pooling
and a head chosen by name. GLMC's "ResNet-32" is the same network 4x as wide
(64, 128, 256 channels: `resnet32_w64`, 7.4M parameters). Shortcuts are "option A": parameter-free
subsampling plus zero-padded channels, which is what makes ResNet-32 0.46M
parameters. Global average pooling makes any input size work (e.g. 8x8 digits).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from tailsam.models.registry import MODELS
from tailsam.models.heads import build_head

STAGE_MULTIPLIERS = (1, 2, 4)   # stage widths relative to the stem's


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: keep every `stride`-th pixel, zero-pad the new channels evenly on both sides."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        before = self.extra_channels // 2
        return F.pad(x, (0, 0, 0, 0, before, self.extra_channels - before))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut, ReLU after the sum. Where the shape changes the shortcut is
    option A (zero-padded subsampling), or with `projection` a 1x1 conv and BatchNorm (ResNet-34's)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, projection: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        elif projection:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = ZeroPadShortcut(stride, out_channels - in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-`depth` (depth = 6n + 2) for small images, stem width `base_width`; `head` by name.

    `features(x)` gives the pooled 4 * base_width features, `head` maps them to logits.
    `last_stage_blocks` shortens the third stage (BBN's "ResNet-32", which CC-SAM trains, has 5, 5 and 4
    blocks); `kaiming_head=False` leaves the head at PyTorch's default init (BBN creates it after its init).
    """

    def __init__(self, depth: int, num_classes: int, head: str = "linear", in_channels: int = 3,
                 base_width: int = 16, last_stage_blocks: int | None = None, kaiming_head: bool = True):
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}")
        blocks_per_stage = (depth - 2) // 6
        stage_blocks = (blocks_per_stage, blocks_per_stage, last_stage_blocks or blocks_per_stage)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base_width, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(base_width),
            nn.ReLU(),
        )
        blocks = []
        width = base_width
        for stage, stage_width in enumerate(m * base_width for m in STAGE_MULTIPLIERS):
            for i in range(stage_blocks[stage]):
                # The first block of every stage but the first halves the resolution.
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(width, stage_width, stride))
                width = stage_width
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = width
        self.head = build_head(head, width, num_classes)
        self._init_weights(kaiming_head)

    def _init_weights(self, kaiming_head: bool) -> None:
        # Kaiming-normal conv and linear weights (the head's too, unless it chooses), as in the
        # LDAM-DRW ResNet-32 that the paper's numbers come from and in GLMC's wide one; BN and
        # biases keep PyTorch's defaults, and the normed head keeps its own unit-norm init.
        def kaiming(module: nn.Module) -> None:
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

        self.stem.apply(kaiming)
        self.blocks.apply(kaiming)
        if not kaiming_head:
            return
        if hasattr(self.head, "backbone_init"):
            self.head.backbone_init(kaiming)
        else:
            self.head.apply(kaiming)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled features, shape [N, feature_dim]."""
        return self.blocks(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# Parameter counts with 10 classes, the linear head and 3 input channels
# (tests check each against the built model). resnet8, one block per stage, is
# the tiny model of the digits demo and the tests.
_PARAMS_10_CLASSES = {8: 75_290, 20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}

for _depth, _params in _PARAMS_10_CLASSES.items():
    MODELS.register(
        f"resnet{_depth}",
        params=_params,
        input_size=(3, 32, 32),
        paper="He et al. 2016, Deep Residual Learning (CIFAR ResNets, option-A shortcuts)",
        # train.precision=auto may pick bf16 on a CPU with bf16 units (tailsam.run.precision):
        # measured faster there, and runs stay reproducible and resume exactly.
        cpu_bf16=True,
    )(partial(CifarResNet, _depth))

MODELS.register(
    "resnet32_w64", params=7_386_186, input_size=(3, 32, 32),
    paper="Du et al. 2023, GLMC: their \"ResNet-32\", the CIFAR ResNet-32 with 64/128/256 channels",
)(partial(CifarResNet, 32, base_width=64))

MODELS.register(
    "resnet32_bbn", params=390_170, input_size=(3, 32, 32),
    paper="Zhou et al. 2020, BBN: the CIFAR ResNet-32 with a 4-block third stage, which CC-SAM trains "
          "(its two unused extra blocks are left out)",
)(partial(CifarResNet, 32, last_stage_blocks=4, kaiming_head=False))
