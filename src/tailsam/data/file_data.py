"""A run's data when it is read from image files (ImageNet-LT, iNaturalist 2018, split lists, a folder tree).

The counterpart of `build_data`'s in-memory datasets (data/build.py), with the same result:
loaders that hand out normalised batches on the device, the class counts and
data.json. The training images are the dataset's training list, optionally
cut to its first `data.classes` classes, then either a long-tailed subset by
the Cao et al. protocol (`data.longtail`: profile, ratio, seed, n_max) or the
list as it is with at most `n_max` images per class (the first ones). Every
selected file is opened once before training, so a missing or unreadable one
stops the run at once, naming it, instead of hours later.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist

from tailsam.data.catalog import default_data_root
from tailsam.data.file_catalog import read_file_dataset
from tailsam.data.file_loader import FileLoader
from tailsam.data.imagefiles import ImageFiles, find_unreadable
from tailsam.data.longtail import indices_sha256, select_longtail
from tailsam.data.run_data import RunData
from tailsam.data.jpeg import IMAGENET_MEAN, IMAGENET_STD, test_transform, train_transform
from tailsam.errors import ConfigError, DataError
from tailsam.resources import cpus_per_process

if TYPE_CHECKING:   # config imports the registries of this package: no import back at run time
    from tailsam.config import Config

SHOW_BAD_FILES = 3   # how many problem files a message names


def build_file_data(config: Config, device: torch.device, *, rank: int = 0, world_size: int = 1) -> RunData:
    """The run's loaders over image files; with `world_size` > 1, this process's share and test shard."""
    d = config.data
    if config.hessian.every:
        raise ConfigError(f"hessian.every needs the training images in memory (CIFAR, digits); dataset "
                          f"{d.dataset} reads image files: set hessian.every=0")
    root = Path(d.root) if d.root is not None else default_data_root()
    split = read_file_dataset(d.dataset, root, train_list=d.train_list, test_list=d.test_list,
                              holdout=d.holdout, seed=d.seed)
    num_classes = split.num_classes if d.classes is None else min(d.classes, split.num_classes)
    train_index = _training_selection(split.train.labels, num_classes, config)
    test_index = _first_per_class(split.test.labels, num_classes, d.test_per_class)
    train, train_index, skipped_train = _readable(split.train, train_index, d.skip_bad, rank, world_size)
    test, _, skipped_test = _readable(split.test, test_index, d.skip_bad, rank, world_size)
    counts = np.bincount(train.labels, minlength=num_classes).tolist()
    if len(train) < world_size or len(test) < world_size:
        raise DataError(f"{split.train.source}: {len(train)} training and {len(test)} test images are left "
                        "after selection; check the lists and data.classes / data.n_max / data.test_per_class")
    empty = [c for c, n in enumerate(counts) if n == 0]
    if empty:
        raise DataError(f"{split.train.source}: class(es) {empty[:5]}{'...' if len(empty) > 5 else ''} of "
                        f"0..{num_classes - 1} have no training images; every class needs one (check the labels, "
                        "or keep fewer classes with data.classes=N)")

    workers = d.workers if d.workers is not None else min(8, cpus_per_process())
    common = dict(image_size=d.image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD, device=device,
                  channels_last=config.train.channels_last, workers=workers, skip_bad=d.skip_bad)
    train_loader = FileLoader(train, transform=train_transform(d.image_size), batch_size=config.optim.batch_size,
                              sampler=d.sampler, seed=config.train.seed, rank=rank, world_size=world_size, **common)
    shard = np.array_split(np.arange(len(test)), world_size)[rank]   # gathered again after prediction
    test_loader = FileLoader(test.subset(shard), transform=test_transform(d.image_size, d.resize),
                             batch_size=config.eval.batch_size, sampler="sequential", **common)

    summary = {
        "dataset": d.dataset, "root": str(root), "counts": counts, "n_train": len(train), "n_test": len(test),
        "indices_sha256": indices_sha256(train_index),
        **{f"{name}_list": str(path) for name, path in split.list_files.items()},
        **{f"{name}_list_sha256": _file_sha256(path) for name, path in split.list_files.items()},
        "seed": d.seed, "longtail": d.longtail, **({"profile": d.profile, "ratio": d.ratio} if d.longtail else {}),
        "image_size": d.image_size, "resize": d.resize,
    }
    if split.class_names is not None:
        summary["class_names"] = list(split.class_names[:num_classes])
    if d.skip_bad:
        summary["skipped_files"] = {"train": len(skipped_train), "test": len(skipped_test),
                                    "first": [split.train.relative(i) for i in skipped_train[:SHOW_BAD_FILES]]
                                    + [split.test.relative(i) for i in skipped_test[:SHOW_BAD_FILES]]}
    return RunData(train_loader, test_loader, counts, 3, summary)


def _training_selection(labels: np.ndarray, num_classes: int, config: Config) -> np.ndarray:
    """Indices into the training list: a long-tailed subset, or the first n_max of each class (all if None)."""
    d = config.data
    if d.longtail:
        in_range = np.flatnonzero(labels < num_classes)
        split = select_longtail(labels[in_range], num_classes, profile=d.profile, ratio=d.ratio, seed=d.seed,
                                n_max=d.n_max)
        return in_range[split.indices]
    return _first_per_class(labels, num_classes, d.n_max)


def _first_per_class(labels: np.ndarray, num_classes: int, limit: int | None) -> np.ndarray:
    """Indices, in list order, of the first `limit` images of each class below `num_classes` (all with None)."""
    index = np.flatnonzero(labels < num_classes)
    if limit is None:
        return index
    rank = np.zeros(len(index), dtype=np.int64)   # position of each image within its class, in list order
    order = np.argsort(labels[index], kind="stable")
    sorted_labels = labels[index][order]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank[order] = np.arange(len(index)) - starts
    return index[rank < limit]


def _readable(files: ImageFiles, index: np.ndarray, skip_bad: bool, rank: int,
              world_size: int) -> tuple[ImageFiles, np.ndarray, np.ndarray]:
    """files[index] without the unreadable ones (DataError unless skip_bad), their indices, and those left out."""
    selected = files.subset(index)
    bad = _checked_once(selected, rank, world_size)
    if bad and not skip_bad:
        named = ", ".join(f"{selected.path(i)} ({problem})" for i, problem in bad[:SHOW_BAD_FILES])
        raise DataError(f"{len(bad)} of {len(selected)} images from {files.source} are missing or unreadable: "
                        f"{named}{', ...' if len(bad) > SHOW_BAD_FILES else ''}; fix the files or the data root, "
                        "or set data.skip_bad=true to leave them out")
    bad_positions = np.array([i for i, _ in bad], dtype=np.int64)
    keep = np.setdiff1d(np.arange(len(selected)), bad_positions)
    return selected.subset(keep), index[keep], index[bad_positions]


def _checked_once(selected: ImageFiles, rank: int, world_size: int) -> list[tuple[int, str]]:
    """`find_unreadable` run by rank 0 alone and shared: every process selects the same files, and
    N processes opening every header (437K for iNaturalist) would multiply the disk traffic by N."""
    if world_size == 1 or not dist.is_initialized():
        return find_unreadable(selected)
    box = [find_unreadable(selected) if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
