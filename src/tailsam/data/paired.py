"""Two loaders in step, for methods that take two batches per step (GLMC: instance and re-sampled)."""

from __future__ import annotations

from typing import Any, Iterator

from tailsam.data.sharded import ShardedLoader


class PairedBatches:
    """Yields (batch of `first`, batch of `second`); one epoch of `first` is one epoch of the pair.

    Both loaders must hand out the same number of batches per epoch (the same images, batch size and
    processes, other samplers); they are resumed together from `state_dict`.
    """

    def __init__(self, first: ShardedLoader, second: ShardedLoader):
        if len(first) != len(second):
            raise ValueError(f"paired loaders need as many batches per epoch: {len(first)} and {len(second)}")
        self.first, self.second = first, second

    @property
    def epoch(self) -> int:
        return self.first.epoch

    @property
    def position(self) -> int:
        return self.first.position

    def __len__(self) -> int:
        return len(self.first)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        second = iter(self.second)
        for batch in self.first:
            yield batch, next(second)
        next(second, None)   # zip would stop before the second loader closes its epoch

    def state_dict(self) -> dict:
        """The pair's epoch and position (as every loader's state has them), and each loader's state."""
        return {"epoch": self.epoch, "position": self.position, "first": self.first.state_dict(),
                "second": self.second.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.first.load_state_dict(state["first"])
        self.second.load_state_dict(state["second"])
