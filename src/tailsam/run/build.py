"""What one process trains with, built from the run's Config: data, network, loss, method, optimizer, schedules.

`build_training` builds it all in one fixed order from one seed, so two
processes, or a resumed and an uninterrupted session, build the same run.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from tailsam.config import Config
from tailsam.data import RunData, build_data
from tailsam.errors import ConfigError
from tailsam.losses import DRW, GlobalBatchLoss, build_loss, class_weights
from tailsam.methods import METHODS, Method, MethodParts
from tailsam.models import build_model
from tailsam.optim import RHO_SCHEDULES, SAM, Schedule, build_lr_schedule, build_rho_schedule
from tailsam.run.precision import Precision, resolve_precision
from tailsam.run.processes import Processes


@dataclass
class Training:
    """Everything one process trains with."""

    config: Config
    data: RunData
    model: nn.Module                 # eager, plain state_dict keys: checkpoints and evaluation use it
    method: Method
    optimizer: torch.optim.Optimizer
    lr_schedule: Schedule
    rho_schedule: Schedule | None
    precision: Precision
    scaler: torch.amp.GradScaler | None


def build_training(config: Config, processes: Processes) -> Training:
    """Build this process's part of the run (its share of the data when data-parallel)."""
    device = processes.device
    if config.train.compile != "off" and device.type != "cuda":
        raise ConfigError("train.compile is for CUDA devices: on this CPU inductor compiled slower than eager and "
                          "gave a SAM-step gradient 1.5% off eager (tests/test_compile.py); use train.compile=off")
    torch.manual_seed(config.train.seed)
    data = build_data(config, device, rank=processes.rank, world_size=processes.world_size)
    model = build_network(config, len(data.counts), data.in_channels, device)

    net = processes.wrap(model, sync_bn=config.train.sync_bn)   # what the update passes run: DDP, compiled
    if config.train.compile != "off":
        net = torch.compile(net, mode=None if config.train.compile == "default" else config.train.compile)
    criterion, drw = build_criterion(config, data.counts, device)
    loss_fn = GlobalBatchLoss(criterion, processes.world_size) if processes.distributed else criterion
    method = METHODS.build(config.method.name, MethodParts(config, model, net, criterion, loss_fn, drw, data,
                                                           device))
    optimizer = build_optimizer(config, [*model.parameters(), *method.parameters()])
    precision = resolve_precision(config.train.precision, device)
    scaler = precision.grad_scaler()
    method.update = method.make_update(optimizer, autocast=precision.autocast, scaler=scaler,
                                       local_perturbation=config.sam.perturbation == "local" and processes.distributed)
    lr_schedule, rho_schedule = build_schedules(config)
    return Training(config, data, model, method, optimizer, lr_schedule, rho_schedule, precision, scaler)


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
    drw = DRW(counts, after=loss.drw_start, beta=loss.beta) if loss.weighting == "drw" else None
    return criterion, drw


def build_optimizer(config: Config, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD (weight decay on every parameter, as the paper's code), wrapped in SAM/ASAM if asked."""
    o = config.optim
    sgd = torch.optim.SGD(parameters, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
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
    if "rho" in inspect.signature(RHO_SCHEDULES.get(config.sam.rho_schedule).builder).parameters:
        rho_args.setdefault("rho", config.sam.rho)   # constant, after: sam.rho is their radius
    if config.sam.rho_schedule == "after" and "start" not in rho_args:
        if config.loss.weighting != "drw":
            raise ConfigError("sam.rho_schedule=after starts SAM when DRW starts: set loss.weighting=drw, or "
                              "the epoch with sam.rho_args.start=N")
        rho_args["start"] = config.loss.drw_start   # one number: train.epochs=N moves it with DRW's
    return lr, build_rho_schedule(config.sam.rho_schedule, **rho_args)
