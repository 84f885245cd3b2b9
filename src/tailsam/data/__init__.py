"""Datasets, long-tailed subsets and the device-resident loader.

    data = load_dataset("cifar10", root)                   # ImageData, uint8 NHWC
    split = select_longtail(data.y_train, 10, ratio=100)   # Cao et al. protocol
    info = dataset_info("cifar10")
    loader = DeviceLoader(data.x_train[split.indices], data.y_train[split.indices],
                          batch_size=128, mean=info.mean, std=info.std,
                          augment=info.augment, device="cuda")
"""

from tailsam.data.augment import Augment
from tailsam.data.catalog import (
    DATA_ROOT_ENV, DATASETS, DatasetInfo, dataset_info, default_data_root, describe_split, load_dataset,
)
from tailsam.data.cifar import CIFAR10, CIFAR100, CifarSpec, load_cifar, read_cifar_npz
from tailsam.data.digits import load_digits
from tailsam.data.images import ImageData
from tailsam.data.loader import DeviceLoader, EpochPlan
from tailsam.data.longtail import PROFILES, LongTailSplit, longtail_counts, select_longtail
from tailsam.data.samplers import SAMPLERS

__all__ = [
    "Augment", "CIFAR10", "CIFAR100", "CifarSpec", "DATASETS", "DATA_ROOT_ENV", "DatasetInfo", "DeviceLoader",
    "EpochPlan", "ImageData", "LongTailSplit", "PROFILES", "SAMPLERS", "dataset_info", "default_data_root",
    "describe_split", "load_cifar", "load_dataset", "load_digits", "longtail_counts", "read_cifar_npz",
    "select_longtail",
]
