"""Everything a run needs, built from its Config: data, model, loss, optimizer, schedules."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tailsam.config import Config
from tailsam.data import DeviceLoader, dataset_info, load_dataset, select_longtail
from tailsam.data.file_catalog import is_file_dataset
from tailsam.errors import DataError
from tailsam.losses import DRW, build_loss, class_weights
from tailsam.models import build_model
from tailsam.optim import SAM, Schedule, build_lr_schedule, build_rho_schedule


@dataclass
class RunData:
    """The long-tailed training split and the test set, as device loaders, with their description."""

    train: DeviceLoader
    test: DeviceLoader
    counts: list[int]
    in_channels: int
    summary: dict          # data.json


def build_data(config: Config, device: torch.device, *, rank: int = 0, world_size: int = 1) -> RunData:
    """The run's loaders; with `world_size` > 1, this process's share (see DeviceLoader) and test shard."""
    if is_file_dataset(config.data.dataset):   # ImageNet-LT, iNaturalist, lists, folders: decoded from files
        from tailsam.train.file_data import build_file_data   # here: it builds a RunData, defined above

        return build_file_data(config, device, rank=rank, world_size=world_size)
    d = config.data
    data = load_dataset(d.dataset, d.root, download=d.download)
    split = select_longtail(data.y_train, data.num_classes, profile=d.profile, ratio=d.ratio, seed=d.seed,
                            n_max=d.n_max)
    test_index = np.arange(len(data.y_test))
    if d.test_per_class is not None:  # the first k test images of each class, in stored order
        test_index = np.concatenate([np.flatnonzero(data.y_test == c)[:d.test_per_class]
                                     for c in range(data.num_classes)])
    absent = sorted(set(range(data.num_classes)) - set(data.y_test[test_index].tolist()))
    if absent:   # per-class accuracy, the groups and the mean over classes would all be wrong
        more = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
        raise DataError(f"the {d.dataset} test set has no images of class {absent[0]}{more}; "
                        "every class needs test images")
    info = dataset_info(d.dataset)
    loader_args = dict(mean=info.mean, std=info.std, device=device, channels_last=config.train.channels_last)
    train = DeviceLoader(data.x_train[split.indices], data.y_train[split.indices],
                         batch_size=config.optim.batch_size, sampler=d.sampler, augment=info.augment,
                         seed=config.train.seed, rank=rank, world_size=world_size, **loader_args)
    if len(test_index) < world_size:
        raise DataError(f"{len(test_index)} test images cannot be split over {world_size} processes; "
                        "raise data.test_per_class or start fewer processes")
    shard = np.array_split(test_index, world_size)[rank]   # gathered again after prediction
    test = DeviceLoader(data.x_test[shard], data.y_test[shard], batch_size=config.eval.batch_size,
                        sampler="sequential", **loader_args)
    summary = {
        "dataset": d.dataset, "profile": d.profile, "ratio": d.ratio, "seed": d.seed,
        "counts": list(split.counts), "n_train": int(len(split.indices)), "n_test": int(len(test_index)),
        "indices_sha256": split.indices_sha256(), "class_names": list(data.class_names),
    }
    return RunData(train, test, list(split.counts), data.image_shape[2], summary)


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
