"""Helpers shared by the benchmark scripts: data location, timing, memory."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch
from PIL import Image

from tailsam.resources import peak_memory

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def data_root(cli_value: str | None) -> Path:
    """--root, else $TAILSAM_DATA_ROOT, else ../shared/data beside the checkout."""
    return Path(cli_value or os.environ.get("TAILSAM_DATA_ROOT") or SHARED_DATA)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Wall seconds of fn(), with the device drained before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def machine(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def memory(device: torch.device | None = None) -> dict:
    """Peak host RSS (MiB) of this process and, on CUDA, its peak allocated GPU memory (MiB).

    Without a device, the GPU figure comes when this process used CUDA. The
    same numbers a sweep records for each of its runs (tailsam.resources).
    """
    return peak_memory(device)


class PilDataset(torch.utils.data.Dataset):
    """The reference data path of the paper's code: one PIL image per item, transformed one at a time."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def cifar10_lt(root, ratio: float = 100):
    """CIFAR-10-LT (seed 0) training images and labels, and the dataset's normalisation info."""
    from tailsam.data import dataset_info, load_dataset, select_longtail

    data = load_dataset("cifar10", data_root(root), download=False)
    split = select_longtail(data.y_train, 10, ratio=ratio, seed=0)
    return data.x_train[split.indices], data.y_train[split.indices], dataset_info("cifar10")
