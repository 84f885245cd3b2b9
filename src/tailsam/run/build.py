"""What trains in a run, built from its Config: the network, the loss, the optimizer and the schedules."""

from __future__ import annotations

import torch
from torch import nn

from tailsam.config import Config
from tailsam.losses import DRW, build_loss, class_weights
from tailsam.models import build_model
from tailsam.optim import SAM, Schedule, build_lr_schedule, build_rho_schedule


def build_network(config: Config, num_classes: int, in_channels: int, device: torch.device) -> nn.Module:
    model = build_model(config.model.name, num_classes, head=config.model.head, in_channels=in_channels)
    memory_format = torch.channels_last if config.train.channels_last else torch.preserve_format
    return model.to(device=device, memory_format=memory_format)


def build_criterion(config: Config, counts: list[int], device: torch.device) -> tuple[nn.Module, DRW | None]:
    """The loss, with static class-balanced weights ("cb"), or a DRW rule to apply each epoch ("drw")."""
    loss = config.loss
    criterion = build_loss(loss.name, counts, **loss.hparams).to(device)
    if loss.weighting == "cb":
        criterion.set_weight(class_weights(counts, "cb", loss.beta))
    drw = DRW(counts, start_epoch=loss.drw_start, beta=loss.beta) if loss.weighting == "drw" else None
    return criterion, drw


def build_optimizer(config: Config, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (weight decay on every parameter, as the paper's code), wrapped in SAM/ASAM if asked."""
    o = config.optim
    sgd = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                          nesterov=o.nesterov)
    if config.sam.kind == "none":
        return sgd
    return SAM(sgd, rho=config.sam.rho, adaptive=config.sam.kind == "asam")


def build_schedules(config: Config) -> tuple[Schedule, Schedule | None]:
    """The lr schedule and, with SAM, the rho schedule (both functions of the 1-indexed epoch)."""
    lr_args = dict(config.optim.lr_args)
    if config.optim.lr_schedule == "cosine":
        lr_args.setdefault("epochs", config.train.epochs)   # decay over the whole run, however long
    lr = build_lr_schedule(config.optim.lr_schedule, base_lr=config.optim.lr, **lr_args)
    if config.sam.kind == "none":
        return lr, None
    rho_args = dict(config.sam.rho_args)
    if config.sam.rho_schedule == "constant":
        rho_args.setdefault("rho", config.sam.rho)
    return lr, build_rho_schedule(config.sam.rho_schedule, **rho_args)
