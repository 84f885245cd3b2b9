"""`build_data`: a run's loaders, built from its Config, for any dataset of the registry (data/catalog.py):
in-memory datasets here, image files in data/file_data.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from tailsam.data.catalog import MemoryDataset, dataset_info, load_dataset
from tailsam.data.file_data import build_file_data
from tailsam.data.loader import DeviceLoader
from tailsam.data.longtail import select_longtail
from tailsam.data.run_data import RunData
from tailsam.errors import DataError

if TYPE_CHECKING:   # config imports the registries of this package: no import back at run time
    from tailsam.config import Config


def build_data(config: Config, device: torch.device, *, rank: int = 0, world_size: int = 1) -> RunData:
    """The run's loaders; with `world_size` > 1, this process's share (see DeviceLoader) and test shard."""
    info = dataset_info(config.data.dataset)
    if not isinstance(info, MemoryDataset):   # ImageNet-LT, iNaturalist, lists, folders: decoded from files
        return build_file_data(config, device, rank=rank, world_size=world_size)
    d = config.data
    data = load_dataset(d.dataset, d.root, download=d.download)
    split = select_longtail(data.y_train, data.num_classes, profile=d.profile, ratio=d.ratio, seed=d.seed,
                            n_max=d.n_max, shuffle=d.protocol != "first-n")
    train_images = data.x_train[split.indices]
    _refuse_blank_images(train_images, d.dataset)
    test_index = np.arange(len(data.y_test))
    if d.test_per_class is not None:  # the first k test images of each class, in stored order
        test_index = np.concatenate([np.flatnonzero(data.y_test == c)[:d.test_per_class]
                                     for c in range(data.num_classes)])
    absent = sorted(set(range(data.num_classes)) - set(data.y_test[test_index].tolist()))
    if absent:   # per-class accuracy, the groups and the mean over classes would all be wrong
        more = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
        raise DataError(f"the {d.dataset} test set has no images of class {absent[0]}{more}; "
                        "every class needs test images")
    mean, std = info.stats(d.protocol)
    loader_args = dict(mean=mean, std=std, device=device, channels_last=config.train.channels_last)
    train = DeviceLoader(train_images, data.y_train[split.indices],
                         batch_size=config.optim.batch_size, sampler=d.sampler, augment=info.augment,
                         seed=config.train.seed, rank=rank, world_size=world_size, **loader_args)
    if len(test_index) < world_size:
        raise DataError(f"{len(test_index)} test images cannot be split over {world_size} processes; "
                        "raise data.test_per_class or start fewer processes")
    shard = np.array_split(test_index, world_size)[rank]   # gathered again after prediction
    test = DeviceLoader(data.x_test[shard], data.y_test[shard], batch_size=config.eval.batch_size,
                        sampler="sequential", **loader_args)
    summary = {
        "dataset": d.dataset, "profile": d.profile, "ratio": d.ratio, "seed": d.seed, "protocol": d.protocol,
        "counts": list(split.counts), "n_train": int(len(split.indices)), "n_test": int(len(test_index)),
        "indices_sha256": split.indices_sha256(), "class_names": list(data.class_names),
    }
    return RunData(train, test, list(split.counts), data.image_shape[2], summary)


# Real photographs are never all zeros; a copy of a dataset cut down to some subsets' pixels (such as
# ../shared/data, which keeps data seed 0's) has zeros everywhere else. Training on those would waste a run.
BLANK_SHARE_REFUSED = 0.01


def _refuse_blank_images(images: np.ndarray, dataset: str) -> None:
    """DataError when more than 1% of the selected training images are all zeros."""
    blank = int((~images.reshape(len(images), -1).any(axis=1)).sum())
    if blank > BLANK_SHARE_REFUSED * len(images):
        raise DataError(f"{blank} of the {len(images)} selected {dataset} training images are blank (all zeros): "
                        "this copy keeps pixels only for some subsets; use the data seed and protocol it was cut "
                        "for (../shared/data: data.seed=0, data.protocol=ldam) or the full dataset")
