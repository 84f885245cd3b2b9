"""What a run's data is: the training and test loaders, the class counts and data.json."""

from __future__ import annotations

from dataclasses import dataclass

from tailsam.data.loader import DeviceLoader


@dataclass
class RunData:
    """The long-tailed training split and the test set, as device loaders, with their description."""

    train: DeviceLoader
    test: DeviceLoader
    counts: list[int]
    in_channels: int
    summary: dict          # data.json
