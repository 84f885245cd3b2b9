"""ImageNet-size networks: torchvision's ResNet-50 and ResNeXt-50 (32x4d), and any timm model, with tailsam's heads.

The backbone's own classifier is dropped and its pooled features go to a head
built by name (linear or normed), as for the CIFAR ResNets. Weights start
from torchvision's (or timm's) own initialisation, not pre-trained: the
long-tail papers train from scratch. `timm:<name>` (e.g. `timm:resnet18`)
builds timm's model of that name when timm is installed.
"""

from __future__ import annotations

from functools import partial

import torch
import torchvision
from torch import nn

from tailsam.errors import ConfigError
from tailsam.models.registry import MODELS
from tailsam.models.heads import build_head

TIMM_PREFIX = "timm:"


class BackboneWithHead(nn.Module):
    """`features(x)`: the backbone's pooled feature vector [N, feature_dim]; `head` maps it to logits."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, head: str):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.head = build_head(head, feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def torchvision_resnet(arch: str, num_classes: int, head: str = "linear", in_channels: int = 3) -> BackboneWithHead:
    """torchvision's `arch` (resnet50, resnext50_32x4d) without its fc layer, and a tailsam head."""
    # num_classes=1: the fc layer is replaced anyway; no point initialising a 2048 x 1000 one.
    net = getattr(torchvision.models, arch)(weights=None, num_classes=1)
    feature_dim = net.fc.in_features
    net.fc = nn.Identity()
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, net.conv1.out_channels, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")   # as torchvision does
    return BackboneWithHead(net, feature_dim, num_classes, head)


def timm_model(name: str, num_classes: int, head: str = "linear", in_channels: int = 3) -> BackboneWithHead:
    """timm's model `name` (without the timm: prefix), pooled features only, and a tailsam head."""
    try:
        import timm
    except ImportError:
        raise ConfigError(f"model {TIMM_PREFIX}{name} needs timm; install it with `pip install timm`") from None
    if not timm.is_model(name):
        raise ConfigError(f"timm has no model {name!r}; see timm.list_models() for the names")
    backbone = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels)
    return BackboneWithHead(backbone, backbone.num_features, num_classes, head)


# Parameter counts with 10 classes, the linear head and 3 input channels (tests check them).
_TORCHVISION = {
    "resnet50": (23_528_522, "He et al. 2016, Deep Residual Learning (torchvision ResNet-50)"),
    "resnext50_32x4d": (23_000_394, "Xie et al. 2017, Aggregated Residual Transformations (torchvision ResNeXt-50)"),
}

for _arch, (_params, _paper) in _TORCHVISION.items():
    MODELS.register(_arch, params=_params, input_size=(3, 224, 224), paper=_paper)(partial(torchvision_resnet, _arch))
