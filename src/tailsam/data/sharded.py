"""What both loaders share: a sampler's order cut into global batches, each split over the processes,
normalised on the device, and an (epoch, position) that round-trips through `state_dict`.

Data-parallel: with `world_size` N, `batch_size` is per process and the
loader walks the order of one process with batch `batch_size * N`; process
`rank` takes piece `rank` of each global batch (`tensor_split` into N). A
last global batch with fewer than N images is dropped, since every process
must take every step.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from tailsam.data.augment import normalize
from tailsam.data.samplers import SAMPLERS


class ShardedLoader:
    """The base of DeviceLoader (images in device memory) and FileLoader (image files decoded by workers).

    `epoch` counts completed epochs (0 before training: the epoch in progress
    is `epoch + 1`, 1-indexed as everywhere in tailsam) and `position` the
    batches of the current one handed out.
    """

    def __init__(self, labels: np.ndarray | torch.Tensor, *, batch_size: int, mean: Sequence[float],
                 std: Sequence[float], device: str | torch.device, sampler: str, channels_last: bool,
                 rank: int, world_size: int, drop_last: bool = False):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
        self.device = torch.device(device)
        self.batch_size, self.drop_last = batch_size, drop_last
        self.rank, self.world_size = rank, world_size
        self.channels_last = channels_last
        self.num_images = len(labels)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device)
        self.sampler = SAMPLERS.build(sampler, torch.as_tensor(labels, device="cpu"))
        self.epoch = 0
        self.position = 0

    def __len__(self) -> int:
        full, rest = divmod(self.num_images, self.batch_size * self.world_size)
        return full if self.drop_last or rest < self.world_size else full + 1

    def piece(self, draws: torch.Tensor, batch: int) -> torch.Tensor:
        """This process's piece of global batch `batch` (0-indexed within the epoch) of one epoch's draws."""
        size = self.batch_size * self.world_size
        whole = draws[batch * size:(batch + 1) * size]
        return whole.tensor_split(self.world_size)[self.rank] if self.world_size > 1 else whole

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC on the device -> float NCHW, normalised, channels_last if asked."""
        return normalize(images, self.mean, self.std, channels_last=self.channels_last)

    def start_next_epoch(self) -> None:
        self.epoch += 1
        self.position = 0

    def state_dict(self) -> dict:
        """Ints (and, in subclasses, tensors) only, so a checkpoint holding it loads with weights_only=True."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
