"""ImageNet-size models: torchvision backbones and timm models by name, each with tailsam's heads."""

from __future__ import annotations

import sys

import pytest
import torch

from tailsam.errors import ConfigError
from tailsam.models import BackboneWithHead, NormedLinear, build_model


@pytest.mark.parametrize("name", ["resnet50", "resnext50_32x4d"])
def test_torchvision_backbone_gets_the_head_and_the_input_channels(name):
    with torch.device("meta"):   # structure only: ResNet-50's weights are not needed here
        model = build_model(name, num_classes=7, head="normed", in_channels=1)
    assert isinstance(model, BackboneWithHead) and isinstance(model.head, NormedLinear)
    assert model.feature_dim == 2048 and model.head.weight.shape == (2048, 7)
    assert model.backbone.conv1.in_channels == 1 and isinstance(model.backbone.fc, torch.nn.Identity)


def test_timm_model_by_name():
    pytest.importorskip("timm")
    torch.manual_seed(0)
    model = build_model("timm:resnet18", num_classes=5, head="normed", in_channels=1)
    logits = model(torch.randn(2, 1, 32, 32))
    assert logits.shape == (2, 5) and logits.abs().max() <= 1 + 1e-6   # cosines from the normed head
    assert model.feature_dim == 512
    with pytest.raises(ConfigError, match="timm has no model 'resnet19'"):
        build_model("timm:resnet19", num_classes=5)


def test_timm_model_without_timm_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)   # makes `import timm` fail
    with pytest.raises(ConfigError, match="pip install timm"):
        build_model("timm:resnet18", num_classes=5)
