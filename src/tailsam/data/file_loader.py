"""A loader over image files with the interface of DeviceLoader: decoding in worker processes, batches on the device.

Every random draw is a function of (seed, epoch, position in the epoch):
each epoch's image order comes from a generator seeded by (seed, epoch), and
each image's augmentation from its own seed drawn beside the order. So the
batches do not depend on the number of workers, a run resumed in the middle
of an epoch sees exactly the images and augmentations an uninterrupted one
would, and the augmentation draws never touch the training process's global
random generator.

Data-parallel sharding as DeviceLoader's: tailsam.data.sharded.
"""

from __future__ import annotations

import warnings
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, get_worker_info

from tailsam.data.imagefiles import ImageFiles
from tailsam.data.jpeg import Transform
from tailsam.data.sharded import ShardedLoader
from tailsam.errors import DataError

DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class DecodedFiles(Dataset):
    """Item (i, seed) -> (uint8 [S, S, 3] image, label, error): file i decoded, transformed with draws seeded by `seed`.

    A file that fails to decode gives a zero image and the error text (empty
    when it worked), so the training process can name it: an exception raised
    in a worker would reach it wrapped in a multi-line traceback.
    """

    def __init__(self, files: ImageFiles, transform: Transform, size: int):
        self.files, self.transform, self.size = files, transform, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int, str]:
        i, seed = key
        label = int(self.files.labels[i])
        try:
            with Image.open(self.files.path(i)) as file:
                image = file.convert("RGB")
        except DECODE_ERRORS as err:
            return torch.zeros(self.size, self.size, 3, dtype=torch.uint8), label, str(err) or type(err).__name__
        # torchvision draws from the global generator: seed it per image. A worker process owns its
        # generator; with 0 workers this runs in the training process, whose generator is restored after.
        if get_worker_info() is not None:
            torch.manual_seed(seed)
            return self.transform(image), label, ""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), label, ""


class _RemainingBatches:
    """The DataLoader's batch sampler: the keys of the batches still to come in this epoch, set before each pass."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class FileLoader(ShardedLoader):
    """Iterates (images, labels) batches of image files on `device`, like DeviceLoader.

    Images come out float NCHW, normalised with `mean`/`std`, in channels_last
    memory if asked. One `for` pass is one epoch; breaking out and iterating
    again continues the same epoch; (epoch, position) round-trip through
    `state_dict` (tailsam.data.sharded). `workers` > 0 decodes in that many
    persistent processes into pinned memory (on CUDA) with non-blocking copies.
    A file that fails to decode raises DataError naming it, or with
    `skip_bad` is left out of its batch with a warning.
    """

    def __init__(self, files: ImageFiles, *, transform: Transform, image_size: int, batch_size: int,
                 mean: Sequence[float], std: Sequence[float], device: str | torch.device = "cpu",
                 sampler: str = "instance", channels_last: bool = False, seed: int = 0, workers: int = 0,
                 rank: int = 0, world_size: int = 1, skip_bad: bool = False):
        super().__init__(files.labels, batch_size=batch_size, mean=mean, std=std, device=device, sampler=sampler,
                         channels_last=channels_last, rank=rank, world_size=world_size)
        self.files, self.seed, self.skip_bad = files, seed, skip_bad
        self._remaining = _RemainingBatches()
        on_cuda = self.device.type == "cuda"
        # Its own generator: each pass draws a worker base seed (unused: images are seeded one by one),
        # which would otherwise come from, and advance, the training process's global generator.
        self._loader = DataLoader(DecodedFiles(files, transform, image_size), batch_sampler=self._remaining,
                                  num_workers=workers, pin_memory=on_cuda, persistent_workers=workers > 0,
                                  generator=torch.Generator())

    def epoch_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This process's (file indices, augmentation seeds) of every batch of the current epoch."""
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        order = self.sampler.epoch_order(generator)
        seeds = torch.randint(2**62, (len(order),), generator=generator)
        return [(self.piece(order, i), self.piece(seeds, i)) for i in range(len(self))]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.position >= len(self):  # a previous pass stopped right after the last batch
            self.start_next_epoch()
        batches = self.epoch_batches()[self.position:]
        self._remaining.batches = [list(zip(index.tolist(), seeds.tolist())) for index, seeds in batches]
        for (index, _), (images, labels, errors) in zip(batches, self._loader):
            self.position += 1
            keep = self._check_decoded(index, errors)
            if keep is not None:
                images, labels = images[keep], labels[keep]
                if not len(labels):
                    if self.world_size > 1:   # skipping the step alone would desynchronise the processes
                        raise DataError(f"every image of a batch of process {self.rank} failed to decode, e.g. "
                                        f"{self.files.path(int(index[0]))}; under torchrun each process must take "
                                        "every step: replace the files, or use a larger optim.batch_size")
                    continue
            yield self._to_device(images, labels)
        self.start_next_epoch()

    def _check_decoded(self, index: torch.Tensor, errors: list[str]) -> torch.Tensor | None:
        """None if every image decoded; else raise DataError, or with skip_bad the mask of those that did."""
        failed = [k for k, error in enumerate(errors) if error]
        if not failed:
            return None
        k = failed[0]
        path = self.files.path(int(index[k]))
        if not self.skip_bad:
            raise DataError(f"{path}: cannot decode this image ({errors[k]}); replace or delete it, "
                            "or set data.skip_bad=true to leave out images that fail")
        for k in failed:
            warnings.warn(f"left out {self.files.path(int(index[k]))}: cannot decode it ({errors[k]})", stacklevel=3)
        keep = torch.ones(len(errors), dtype=torch.bool)
        keep[failed] = False
        return keep

    def _to_device(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        non_blocking = self.device.type == "cuda"   # pinned by the DataLoader on CUDA
        images = images.to(self.device, non_blocking=non_blocking)
        labels = labels.to(self.device, non_blocking=non_blocking)
        return self.normalize(images), labels


def _epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed for (seed, epoch), so neighbouring epochs' generators are unrelated."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> np.uint64(1))
