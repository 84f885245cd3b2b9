"""The loss registry and `build_loss`, the one way the rest of tailsam makes a loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tailsam.errors import ConfigError
from tailsam.losses.base import ClassCounts
from tailsam.registry import Registry

# Metadata of every entry: `hparams` (name -> default), `reduces_to_ce`
# ({"hparams": ..., "uniform_counts": bool}: the setting under which the loss
# equals plain CE, checked by the tests), `paper`, and optionally `head` (the
# head the method is meant for).
LOSSES = Registry("loss")


def build_loss(
    name: str, counts: ClassCounts, weight: torch.Tensor | None = None,
    reduction: str = "mean", **hparams: Any,
) -> nn.Module:
    """Build loss `name` for training-set class `counts`; unset hyper-parameters take their defaults.

    `weight` (per-class tensor [C] or None) can be replaced later with
    `loss.set_weight(...)`. Unknown names or hyper-parameters raise ConfigError.
    """
    entry = LOSSES.get(name)
    unknown = sorted(set(hparams) - set(entry.metadata["hparams"]))
    if unknown:
        valid = ", ".join(entry.metadata["hparams"]) or "none"
        raise ConfigError(f"loss {name!r} has no hyper-parameter {', '.join(unknown)}; valid: {valid}")
    return entry.builder(counts, weight=weight, reduction=reduction, **hparams)
