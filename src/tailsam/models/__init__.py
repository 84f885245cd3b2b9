"""Networks: CIFAR ResNets (resnet8/20/32/44/56/110, GLMC's resnet32_w64 and resnet34_cifar),
torchvision's resnet50 and resnext50_32x4d, and `timm:<name>` for any timm model, each with a head
chosen by name: linear, cosine ("normed"), GLMC's four ("glmc") or PaCo's two ("paco").

`build_model(name, num_classes, head="linear", in_channels=3)` builds any
registered model; `MODELS` lists them with metadata (params, input_size, paper).
"""

from tailsam.models.build import build_model
from tailsam.models.heads import HEADS, GLMCHeads, GLMCOutput, NormedLinear, PaCoHeads, PaCoOutput, build_head
from tailsam.models.imagenet import TIMM_PREFIX, BackboneWithHead
from tailsam.models.registry import MODELS
from tailsam.models.resnet34_cifar import CifarResNet34
from tailsam.models.resnet_cifar import CifarResNet

__all__ = ["MODELS", "HEADS", "TIMM_PREFIX", "BackboneWithHead", "CifarResNet", "CifarResNet34", "GLMCHeads",
           "GLMCOutput", "NormedLinear", "PaCoHeads",
           "PaCoOutput", "build_head", "build_model"]
