"""One loader per stage of a run, for methods that change their sampler part-way (CC-SAM: instance
sampling, then class-aware batches for the classifier's re-training)."""

from __future__ import annotations

from typing import Any, Iterator

from tailsam.data.paired import LoaderPair
from tailsam.data.sharded import ShardedLoader


class StagedBatches(LoaderPair):
    """`first`'s batches for epochs 1..`first_epochs`, then `second`'s.

    Each loader counts its own epochs, so the second starts its first epoch (and its random stream's
    first draw) at epoch `first_epochs` + 1, however the run got there.
    """

    def __init__(self, first: ShardedLoader, second: ShardedLoader, first_epochs: int):
        super().__init__(first, second)
        self.first_epochs = first_epochs

    @property
    def active(self) -> ShardedLoader:
        return self.first if self.first.epoch < self.first_epochs else self.second

    @property
    def epoch(self) -> int:
        return self.first.epoch + self.second.epoch

    @property
    def position(self) -> int:
        return self.active.position

    def __iter__(self) -> Iterator[Any]:
        return iter(self.active)
