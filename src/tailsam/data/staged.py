"""One loader per stage of a run, for methods that change their sampler part-way (CC-SAM: instance
sampling, then class-balanced batches for the classifier's re-training)."""

from __future__ import annotations

from typing import Any, Iterator

from tailsam.data.sharded import ShardedLoader


class StagedBatches:
    """`first`'s batches for epochs 1..`first_epochs`, then `second`'s; resumed from `state_dict`.

    Each loader counts its own epochs, so the second starts its first epoch (and its random stream's
    first draw) at epoch `first_epochs` + 1, however the run got there.
    """

    def __init__(self, first: ShardedLoader, second: ShardedLoader, first_epochs: int):
        if len(first) != len(second):
            raise ValueError(f"staged loaders need as many batches per epoch: {len(first)} and {len(second)}")
        self.first, self.second, self.first_epochs = first, second, first_epochs

    @property
    def active(self) -> ShardedLoader:
        return self.first if self.first.epoch < self.first_epochs else self.second

    @property
    def epoch(self) -> int:
        return self.first.epoch + self.second.epoch

    @property
    def position(self) -> int:
        return self.active.position

    def __len__(self) -> int:
        return len(self.first)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.active)

    def state_dict(self) -> dict:
        """The run's epoch and position (as every loader's state has them), and each loader's state."""
        return {"epoch": self.epoch, "position": self.position, "first": self.first.state_dict(),
                "second": self.second.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.first.load_state_dict(state["first"])
        self.second.load_state_dict(state["second"])
