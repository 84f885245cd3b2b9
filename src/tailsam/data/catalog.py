"""Every named dataset in one registry: held in memory (CIFAR, digits) or read from image files.

    cifar10, cifar100, digits   MemoryDataset: uint8 arrays, on the device while training
    imagenet-lt, inat2018       ListDataset: the published split lists under the data root
    lists                       ListDataset: your own split lists (data.train_list, data.test_list)
    folder                      FolderDataset: your own class-per-folder tree (data/imagefolder.py)

`tailsam.data.build_data` builds a run's loaders from any of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tailsam.data.augment import Augment
from tailsam.data.cifar import CIFAR10, CIFAR100, load_cifar
from tailsam.data.digits import load_digits
from tailsam.data.images import ImageData
from tailsam.data.longtail import select_longtail
from tailsam.errors import DataError
from tailsam.registry import Registry


@dataclass(frozen=True)
class DatasetInfo:
    paper: str = ""   # where the dataset (or its long-tailed form) comes from


# Each entry is a dataset description (MemoryDataset, ListDataset, FolderDataset), not a builder to call:
# look one up with `dataset_info(name)`; `build_data` builds a run's loaders from it.
DATASETS = Registry("dataset", DatasetInfo)
DATA_ROOT_ENV = "TAILSAM_DATA_ROOT"


@dataclass(frozen=True)
class MemoryDataset:
    """How to read a dataset held in memory, and the per-channel statistics and augmentation it trains with."""

    read: Callable[[Path, bool], ImageData]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Augment
    needs_root: bool = True
    # Per selection protocol, the (mean, std) its reference code normalises with, where they differ.
    protocol_stats: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)

    def stats(self, protocol: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) under selection protocol `protocol`."""
        return self.protocol_stats.get(protocol, (self.mean, self.std))


@dataclass(frozen=True)
class ListDataset:
    """A dataset given by a training and a test split file; None list names must come from the config.

    `num_classes` None: found in the data (the largest label + 1).
    """

    num_classes: int | None
    train_list: str | None
    test_list: str | None


@dataclass(frozen=True)
class FolderDataset:
    """A dataset given by a class-per-folder tree."""

    num_classes: None = None   # found in the data: the tree's class folders


_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2023, 0.1994, 0.2010)
# GLMC's code normalises CIFAR-10 with the exact training-set statistics (its CIFAR-100 path uses the above).
_GLMC_CIFAR10 = ((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768))

for _spec in (CIFAR10, CIFAR100):
    DATASETS.register(_spec.name)(MemoryDataset(
        read=lambda root, download, spec=_spec: load_cifar(spec, root, download=download),
        num_classes=_spec.num_classes, mean=_CIFAR_MEAN, std=_CIFAR_STD, augment=Augment(padding=4, flip=True),
        protocol_stats={"glmc": _GLMC_CIFAR10} if _spec is CIFAR10 else {},
    ))

# Digits are not mirror-symmetric, so no flip; a 1-pixel shift is the 8x8 analogue of CIFAR's 4.
# Mean and std are those of the 1,200 balanced training images.
DATASETS.register("digits")(MemoryDataset(
    read=lambda root, download: load_digits(), num_classes=10, mean=(0.3058,), std=(0.3758,),
    augment=Augment(padding=1, flip=False), needs_root=False,
))
DATASETS.register("imagenet-lt", paper="Liu et al. 2019, Large-Scale Long-Tailed Recognition")(
    ListDataset(1000, "ImageNet_LT_train.txt", "ImageNet_LT_test.txt"))
DATASETS.register("inat2018", paper="Van Horn et al. 2018, The iNaturalist Species "
                  "Classification and Detection Dataset")(
    ListDataset(8142, "iNaturalist18_train.txt", "iNaturalist18_val.txt"))
DATASETS.register("lists")(ListDataset(None, None, None))
DATASETS.register("folder")(FolderDataset())


def default_data_root() -> Path:
    """$TAILSAM_DATA_ROOT if set, else ./data."""
    return Path(os.environ.get(DATA_ROOT_ENV, "data"))


def dataset_info(name: str) -> MemoryDataset | ListDataset | FolderDataset:
    """The registered description of dataset `name` (ConfigError listing the names if unknown)."""
    return DATASETS.get(name).builder


def memory_datasets() -> list[str]:
    """The names of the datasets held in memory (`tailsam data` and the Hessian analysis take these)."""
    return [entry.name for entry in DATASETS if isinstance(entry.builder, MemoryDataset)]


def load_dataset(name: str, root: str | os.PathLike | None = None, *, download: bool = True) -> ImageData:
    """Read a dataset held in memory from `root` (default: $TAILSAM_DATA_ROOT, else ./data)."""
    if not isinstance(dataset_info(name), MemoryDataset):
        raise DataError(f"dataset {name} is read from image files, not loaded into memory; choose one of "
                        f"{', '.join(memory_datasets())}")
    root = Path(root) if root is not None else default_data_root()
    if dataset_info(name).needs_root and root.exists() and not root.is_dir():
        raise DataError(f"the data root {root} is a file; point --data-root or ${DATA_ROOT_ENV} at the folder "
                        "that holds the data")
    return dataset_info(name).read(root, download)


def describe_split(name: str, *, root: str | os.PathLike | None = None, profile: str = "exp",
                   ratio: float = 100.0, seed: int = 0, download: bool = True) -> dict:
    """Class counts and the index hash of a dataset's long-tailed training split (`tailsam data`)."""
    data = load_dataset(name, root, download=download)
    split = select_longtail(data.y_train, data.num_classes, profile=profile, ratio=ratio, seed=seed)
    return {
        "dataset": name, "profile": profile, "ratio": ratio, "seed": seed,
        "counts": list(split.counts), "n_train": int(len(split.indices)), "n_test": int(len(data.y_test)),
        "indices_sha256": split.indices_sha256(),
    }
