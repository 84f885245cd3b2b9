"""Two loaders driven as one: in step (GLMC: an instance batch with a re-sampled one) or one after the other
(data/staged.py)."""

from __future__ import annotations

from typing import Any, Iterator

from tailsam.data.sharded import ShardedLoader


class LoaderPair:
    """Two loaders with as many batches per epoch, checkpointed and resumed together."""

    def __init__(self, first: ShardedLoader, second: ShardedLoader):
        if len(first) != len(second):
            raise ValueError(f"{type(self).__name__} needs loaders with as many batches per epoch: "
                             f"{len(first)} and {len(second)}")
        self.first, self.second = first, second

    epoch: int      # epochs completed, as the loop counts them
    position: int   # batches of the current epoch handed out

    def __len__(self) -> int:
        return len(self.first)

    def state_dict(self) -> dict:
        """The pair's epoch and position (as every loader's state has them), and each loader's state."""
        return {"epoch": self.epoch, "position": self.position, "first": self.first.state_dict(),
                "second": self.second.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.first.load_state_dict(state["first"])
        self.second.load_state_dict(state["second"])


class PairedBatches(LoaderPair):
    """Yields (batch of `first`, batch of `second`); one epoch of `first` is one epoch of the pair.

    Both loaders must hand out the same number of batches per epoch (the same images, batch size and
    processes, other samplers).
    """

    @property
    def epoch(self) -> int:
        return self.first.epoch

    @property
    def position(self) -> int:
        return self.first.position

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        second = iter(self.second)
        for batch in self.first:
            yield batch, next(second)
        next(second, None)   # zip would stop before the second loader closes its epoch
