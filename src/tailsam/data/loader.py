"""A data loader whose whole split lives on the target device as one uint8 tensor.

For a model as small as ResNet-32 the usual DataLoader with per-image PIL
transforms, not the model, sets the training speed. Here every epoch's random
draws (order, crop offsets, flips) are made at once from the loader's own
seeded CPU generator, so CPU and CUDA runs see the same batches, and each
batch is one gather plus a normalisation on the device.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from tailsam.data.augment import Augment, draw_crop_flip, gather_crops, normalize, pad_images
from tailsam.data.samplers import SAMPLERS


@dataclass(frozen=True)
class EpochPlan:
    """All random draws of one epoch: the image order and, when augmenting, each position's crop and flip."""

    order: torch.Tensor
    top: torch.Tensor | None = None
    left: torch.Tensor | None = None
    flip: torch.Tensor | None = None


class DeviceLoader:
    """Iterates (images, labels) batches of a uint8 NHWC split held on `device`.

    Images come out float NCHW, normalised with `mean`/`std` (per channel, in
    [0, 1] units), in channels_last memory if asked. One `for` pass is one
    epoch; breaking out and iterating again continues the same epoch. The
    state (epoch, batches consumed, generator state at the epoch's start)
    round-trips through `state_dict`, so a resumed run sees the same batches.

    Data-parallel: with `world_size` N, `batch_size` is per process and the
    loader walks the order of one process with batch `batch_size * N`; process
    `rank` takes piece `rank` of each global batch (`tensor_split` into N). A
    last global batch with fewer than N images is dropped, since every process
    must take every step.
    """

    def __init__(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *,
                 batch_size: int, mean: Sequence[float], std: Sequence[float], device: str | torch.device = "cpu",
                 sampler: str = "instance", augment: Augment | None = None, channels_last: bool = False,
                 drop_last: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1):
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, H, W, C], got {images.dtype} {list(images.shape)}")
        labels = torch.as_tensor(labels, dtype=torch.int64)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.drop_last = drop_last
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
        self.rank, self.world_size = rank, world_size
        self.channels_last = channels_last
        self.augment = augment
        self.height, self.width = images.shape[1:3]
        self.num_images = len(images)
        # With augmentation the split is stored padded once, so a batch is a single gather.
        padding = augment.padding if augment else 0
        self.images = pad_images(images.to(self.device), padding)
        self.labels = labels.to(self.device)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device)
        self.sampler = SAMPLERS.build(sampler, labels)
        self.epoch = 0
        self.position = 0  # batches of the current epoch already handed out
        self._epoch_start_state = torch.Generator().manual_seed(seed).get_state()

    def resampled(self, sampler: str, *, seed: int) -> DeviceLoader:
        """A loader over the same images on the device (no copy) drawn by another sampler, from epoch 0.

        For methods that take two batches per step, e.g. one instance-sampled and one class-balanced.
        """
        other = copy.copy(self)
        other.sampler = SAMPLERS.build(sampler, self.labels.cpu())
        other.epoch, other.position = 0, 0
        other._epoch_start_state = torch.Generator().manual_seed(seed).get_state()
        return other

    def __len__(self) -> int:
        full, rest = divmod(self.num_images, self.batch_size * self.world_size)
        return full if self.drop_last or rest < self.world_size else full + 1

    def epoch_plan(self) -> EpochPlan:
        """The current epoch's draws (recomputed from the stored generator state; no side effects)."""
        return self._draw_plan()[0]

    def _draw_plan(self) -> tuple[EpochPlan, torch.Tensor]:
        generator = torch.Generator()
        generator.set_state(self._epoch_start_state)
        order = self.sampler.epoch_order(generator)
        if self.augment is None:
            plan = EpochPlan(order)
        else:
            plan = EpochPlan(order, *draw_crop_flip(len(order), self.augment, generator))
        return plan, generator.get_state()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.position >= len(self):  # a previous pass stopped right after the last batch
            self._start_next_epoch(self._draw_plan()[1])
        plan, next_state = self._draw_plan()
        on_device = EpochPlan(*(t.to(self.device, non_blocking=True) if t is not None else None
                                for t in (plan.order, plan.top, plan.left, plan.flip)))
        while self.position < len(self):
            size = self.batch_size * self.world_size
            batch = slice(self.position * size, (self.position + 1) * size)
            self.position += 1
            yield self._batch(on_device, batch)
        self._start_next_epoch(next_state)

    def _start_next_epoch(self, state: torch.Tensor) -> None:
        self.epoch += 1
        self.position = 0
        self._epoch_start_state = state

    def _piece(self, draws: torch.Tensor, batch: slice) -> torch.Tensor:
        """This process's piece of the global batch `batch` of one epoch's draws."""
        return draws[batch].tensor_split(self.world_size)[self.rank] if self.world_size > 1 else draws[batch]

    def _batch(self, plan: EpochPlan, batch: slice) -> tuple[torch.Tensor, torch.Tensor]:
        index = self._piece(plan.order, batch)
        if self.augment is None:
            images = self.images[index]
        else:
            images = gather_crops(self.images, index, self._piece(plan.top, batch), self._piece(plan.left, batch),
                                  self._piece(plan.flip, batch), self.height, self.width)
        return normalize(images, self.mean, self.std, channels_last=self.channels_last), self.labels[index]

    def state_dict(self) -> dict:
        """Tensors and ints only, so a checkpoint holding it loads with weights_only=True."""
        return {"epoch": self.epoch, "position": self.position, "generator_state": self._epoch_start_state.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._epoch_start_state = state["generator_state"].clone()
