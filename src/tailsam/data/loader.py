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
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from tailsam.data.augment import Augment, draw_crop_flip, gather_crops, pad_images
from tailsam.data.samplers import SAMPLERS, Sampler
from tailsam.data.sharded import ShardedLoader


@dataclass(frozen=True)
class EpochPlan:
    """All random draws of one epoch: the image order and, when augmenting, each position's crop and flip
    ([views, N]: one draw per view)."""

    order: torch.Tensor
    top: torch.Tensor | None = None
    left: torch.Tensor | None = None
    flip: torch.Tensor | None = None
    seeds: torch.Tensor | None = None   # [views, N], on the CPU: each image's seed for per-image view transforms


class DeviceLoader(ShardedLoader):
    """Iterates (images, labels) batches of a uint8 NHWC split held on `device`.

    Images come out float NCHW, normalised with `mean`/`std` (per channel, in
    [0, 1] units), in channels_last memory if asked. One `for` pass is one
    epoch; breaking out and iterating again continues the same epoch. The
    state (epoch, batches consumed, generator state at the epoch's start)
    round-trips through `state_dict`, so a resumed run sees the same batches.
    With `views` > 1 (augmenting) each batch is ((view 1, ..., view k), labels): k
    independent crops and flips of the same images, the first drawn as for one view.
    `with_view_transforms(t1, ..., tk)` gives views made by per-image torchvision
    transforms on the CPU instead (uint8 CHW in and out), each image's draws seeded
    from the epoch's generator, so they too are the same after a resume. They run in
    the training process between steps, without prefetching: on a GPU a small model
    will wait for them.
    Data-parallel sharding: tailsam.data.sharded.
    """

    def __init__(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *,
                 batch_size: int, mean: Sequence[float], std: Sequence[float], device: str | torch.device = "cpu",
                 sampler: str = "instance", augment: Augment | None = None, channels_last: bool = False,
                 drop_last: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1, views: int = 1):
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, H, W, C], got {images.dtype} {list(images.shape)}")
        labels = torch.as_tensor(labels, dtype=torch.int64)
        super().__init__(labels, batch_size=batch_size, mean=mean, std=std, device=device, sampler=sampler,
                         channels_last=channels_last, rank=rank, world_size=world_size, drop_last=drop_last)
        self.augment, self.views = augment, _checked_views(views, augment)
        self.view_transforms: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = ()
        self._cpu_images: torch.Tensor | None = None   # unpadded uint8 NHWC, for per-image view transforms
        self.height, self.width = images.shape[1:3]
        # With augmentation the split is stored padded once, so a batch is a single gather.
        padding = augment.padding if augment else 0
        self.images = pad_images(images.to(self.device), padding)
        self.labels = labels.to(self.device)
        self._epoch_start_state = torch.Generator().manual_seed(seed).get_state()

    def resampled(self, sampler: str | Sampler, *, seed: int) -> DeviceLoader:
        """A loader over the same images on the device (no copy) drawn by another sampler (a name, or a
        sampler object), from epoch 0.

        For methods that take two batches per step, e.g. one instance-sampled and one class-balanced.
        """
        other = copy.copy(self)
        other.sampler = SAMPLERS.build(sampler, self.labels.cpu()) if isinstance(sampler, str) else sampler
        other.epoch, other.position = 0, 0
        other._epoch_start_state = torch.Generator().manual_seed(seed).get_state()
        return other

    def with_views(self, views: int) -> DeviceLoader:
        """A loader over the same images (no copy), with this one's sampler and position, handing out `views`
        augmented views per image; from here on the two advance separately."""
        other = copy.copy(self)
        other.views = _checked_views(views, self.augment)
        return other

    def with_view_transforms(self, *transforms: Callable[[torch.Tensor], torch.Tensor]) -> DeviceLoader:
        """A loader over the same images, sampler and position whose batches are ((view 1, ..., view k),
        labels), view v made by `transforms[v]` image by image (uint8 CHW -> uint8 CHW, e.g. torchvision's
        v2 transforms) on the CPU; this loader's crop and flip are not applied."""
        pad = self.augment.padding if self.augment is not None else 0
        other = copy.copy(self)
        other.views, other.view_transforms = len(transforms), tuple(transforms)
        other._cpu_images = self.images[:, pad:pad + self.height, pad:pad + self.width].cpu()
        return other

    def epoch_plan(self) -> EpochPlan:
        """The current epoch's draws (recomputed from the stored generator state; no side effects)."""
        return self._draw_plan()[0]

    def _draw_plan(self) -> tuple[EpochPlan, torch.Tensor]:
        generator = torch.Generator()
        generator.set_state(self._epoch_start_state)
        order = self.sampler.epoch_order(generator)
        if self.view_transforms:
            plan = EpochPlan(order, seeds=torch.randint(2**62, (self.views, len(order)), generator=generator))
        elif self.augment is None:
            plan = EpochPlan(order)
        else:
            draws = [draw_crop_flip(len(order), self.augment, generator) for _ in range(self.views)]
            plan = EpochPlan(order, *(torch.stack(per_view) for per_view in zip(*draws)))
        return plan, generator.get_state()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.position >= len(self):  # a previous pass stopped right after the last batch
            self._start_epoch_from(self._draw_plan()[1])
        plan, next_state = self._draw_plan()
        on_device = EpochPlan(*(t.to(self.device, non_blocking=True) if t is not None else None
                                for t in (plan.order, plan.top, plan.left, plan.flip)), seeds=plan.seeds)
        while self.position < len(self):
            self.position += 1
            yield self._batch(on_device, self.position - 1)
        self._start_epoch_from(next_state)

    def _start_epoch_from(self, state: torch.Tensor) -> None:
        self.start_next_epoch()
        self._epoch_start_state = state

    def _batch(self, plan: EpochPlan, batch: int) -> tuple[torch.Tensor | tuple[torch.Tensor, ...], torch.Tensor]:
        index = self.piece(plan.order, batch)
        if self.view_transforms:
            return self._transformed(index, [self.piece(seeds, batch) for seeds in plan.seeds]), self.labels[index]
        if self.augment is None:
            return self.normalize(self.images[index]), self.labels[index]
        views = tuple(self.normalize(gather_crops(self.images, index, self.piece(plan.top[v], batch),
                                                  self.piece(plan.left[v], batch), self.piece(plan.flip[v], batch),
                                                  self.height, self.width))
                      for v in range(self.views))
        return views[0] if self.views == 1 else views, self.labels[index]

    def _transformed(self, index: torch.Tensor, seeds: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Each view of the images at `index`, image by image, each draw seeded by its own seed."""
        images = self._cpu_images[index.cpu()].permute(0, 3, 1, 2)   # uint8 NCHW
        generator = torch.default_generator   # torchvision draws from the global CPU generator: restore it after
        outer = generator.get_state()
        views = []
        for transform, view_seeds in zip(self.view_transforms, seeds):
            made = []
            for image, seed in zip(images, view_seeds.tolist()):
                generator.manual_seed(seed)   # the CPU generator only (torch.manual_seed would reseed CUDA's too)
                made.append(transform(image))
            views.append(self.normalize(torch.stack(made).permute(0, 2, 3, 1).to(self.device)))
        generator.set_state(outer)
        return tuple(views)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "generator_state": self._epoch_start_state.clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._epoch_start_state = state["generator_state"].clone()


def _checked_views(views: int, augment: Augment | None) -> int:
    if views < 1 or (views > 1 and augment is None):
        raise ValueError(f"views must be 1, or more with augmentation; got {views} (augment={augment})")
    return views
