"""The model registry and `build_model`, the one way the rest of tailsam makes a network."""

from __future__ import annotations

from functools import partial

from torch import nn

from tailsam.errors import ConfigError
from tailsam.models.imagenet import TIMM_PREFIX, timm_model
from tailsam.models.registry import MODELS


def build_model(name: str, num_classes: int, head: str = "linear", in_channels: int = 3) -> nn.Module:
    """Build the registered model `name` with a `head` ("linear" or "normed") for `num_classes`.

    `timm:<name>` builds timm's model `name` (when timm is installed) with that head.
    Unknown names and non-positive sizes raise ConfigError (the CLI reports it in one line).
    """
    if name.startswith(TIMM_PREFIX):
        builder = partial(timm_model, name[len(TIMM_PREFIX):])
    else:
        builder = MODELS.get(name).builder
    if num_classes < 1:
        raise ConfigError(f"model.num_classes must be >= 1, got {num_classes}")
    if in_channels < 1:
        raise ConfigError(f"model.in_channels must be >= 1, got {in_channels}")
    return builder(num_classes=num_classes, head=head, in_channels=in_channels)
