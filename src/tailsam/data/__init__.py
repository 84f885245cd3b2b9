"""Datasets (one registry: in memory or from image files), long-tailed subsets, and the loaders.

    data = build_data(config, device)                      # RunData: train/test loaders, counts, data.json

or piece by piece, for a dataset held in memory:

    data = load_dataset("cifar10", root)                   # ImageData, uint8 NHWC
    split = select_longtail(data.y_train, 10, ratio=100)   # Cao et al. protocol
    info = dataset_info("cifar10")
    loader = DeviceLoader(data.x_train[split.indices], data.y_train[split.indices],
                          batch_size=128, mean=info.mean, std=info.std,
                          augment=info.augment, device="cuda")

and for image files (ImageNet-LT, iNaturalist 2018, split lists, folder trees):

    split = read_file_dataset("imagenet-lt", root)           # FileSplit: train/test ImageFiles
    loader = FileLoader(split.train, transform=jpeg.train_transform(224), image_size=224, batch_size=256,
                        mean=jpeg.IMAGENET_MEAN, std=jpeg.IMAGENET_STD, device="cuda", workers=8)

Both loaders stand on one base (data/sharded.py): data-parallel sharding, epoch and position.
"""

from tailsam.data.augment import Augment
from tailsam.data.build import build_data
from tailsam.data.catalog import (
    DATA_ROOT_ENV, DATASETS, FolderDataset, ListDataset, MemoryDataset, dataset_info, default_data_root,
    describe_split, load_dataset, memory_datasets,
)
from tailsam.data.cifar import CIFAR10, CIFAR100, CifarSpec, load_cifar, read_cifar_npz
from tailsam.data.digits import load_digits
from tailsam.data.file_catalog import FileSplit, read_file_dataset
from tailsam.data.file_loader import FileLoader
from tailsam.data.filelists import read_file_list
from tailsam.data.imagefiles import ImageFiles
from tailsam.data.images import ImageData
from tailsam.data.loader import DeviceLoader, EpochPlan
from tailsam.data.paired import PairedBatches
from tailsam.data.longtail import PROFILES, PROTOCOLS, LongTailSplit, longtail_counts, select_longtail
from tailsam.data.run_data import RunData
from tailsam.data.samplers import SAMPLERS, ClassPowerSampler
from tailsam.data.sharded import ShardedLoader
from tailsam.data.staged import StagedBatches

__all__ = [
    "Augment", "CIFAR10", "CIFAR100", "CifarSpec", "ClassPowerSampler", "DATASETS", "DATA_ROOT_ENV", "DeviceLoader",
    "EpochPlan", "FileLoader", "FileSplit", "FolderDataset", "ImageData", "ImageFiles", "ListDataset",
    "LongTailSplit", "MemoryDataset", "PROFILES", "PROTOCOLS", "PairedBatches", "RunData", "SAMPLERS",
    "ShardedLoader", "StagedBatches", "build_data", "dataset_info", "default_data_root", "describe_split", "load_cifar",
    "load_dataset", "load_digits", "longtail_counts", "memory_datasets", "read_cifar_npz", "read_file_dataset",
    "read_file_list", "select_longtail",
]
