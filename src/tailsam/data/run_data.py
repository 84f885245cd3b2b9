"""What a run's data is: the training and test loaders, the class counts and data.json."""

from __future__ import annotations

from dataclasses import dataclass

from tailsam.data.sharded import ShardedLoader


@dataclass
class RunData:
    """The long-tailed training split and the test set, as loaders (DeviceLoader or FileLoader), with their
    description. A method may train from loaders derived from `train` (tailsam.methods)."""

    train: ShardedLoader
    test: ShardedLoader
    counts: list[int]
    in_channels: int
    summary: dict          # data.json
