"""Networks: CIFAR ResNets (resnet8/20/32/44/56/110), torchvision's resnet50 and resnext50_32x4d, and
`timm:<name>` for any timm model, each with a linear or cosine ("normed") head.

`build_model(name, num_classes, head="linear", in_channels=3)` builds any
registered model; `MODELS` lists them with metadata (params, input_size, paper).
"""

from tailsam.models.build import build_model
from tailsam.models.heads import HEADS, NormedLinear, build_head
from tailsam.models.imagenet import TIMM_PREFIX, BackboneWithHead
from tailsam.models.registry import MODELS
from tailsam.models.resnet_cifar import CifarResNet

__all__ = ["MODELS", "HEADS", "TIMM_PREFIX", "build_model", "build_head", "BackboneWithHead", "CifarResNet", "NormedLinear"]
