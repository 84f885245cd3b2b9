"""The loss registry and `build_loss`, the one way the rest of tailsam makes a loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tailsam.errors import ConfigError
from tailsam.losses.base import ClassCounts
from tailsam.registry import Registry

@dataclass(frozen=True)
class LossInfo:
    hparams: dict[str, Any]          # hyper-parameters and their defaults
    # {"hparams": ..., "uniform_counts": bool}: the setting where the loss equals plain CE (checked by the tests)
    reduces_to_ce: dict[str, Any]
    paper: str
    head: str = "linear"             # the head the loss is meant for


LOSSES = Registry("loss", LossInfo)


def build_loss(
    name: str, counts: ClassCounts, weight: torch.Tensor | None = None,
    reduction: str = "mean", **hparams: Any,
) -> nn.Module:
    """Build loss `name` for training-set class `counts`; unset hyper-parameters take their defaults.

    `weight` (per-class tensor [C] or None) can be replaced later with
    `loss.set_weight(...)`. Unknown names or hyper-parameters raise ConfigError.
    """
    entry = LOSSES.get(name)
    unknown = sorted(set(hparams) - set(entry.info.hparams))
    if unknown:
        valid = ", ".join(entry.info.hparams) or "none"
        raise ConfigError(f"loss {name!r} has no hyper-parameter {', '.join(unknown)}; valid: {valid}")
    return entry.builder(counts, weight=weight, reduction=reduction, **hparams)
