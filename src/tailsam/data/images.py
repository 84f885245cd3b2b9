"""The in-memory form every reader returns: uint8 NHWC images with int64 labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tailsam.errors import DataError


@dataclass(frozen=True)
class ImageData:
    """A classification dataset held in memory.

    Images are uint8 [N, H, W, C] (channels last, as stored on disk) and labels
    int64 [N]; `class_names` has one entry per class. CIFAR-100 also carries
    its coarse (super-class) labels.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    y_train_coarse: np.ndarray | None = None
    y_test_coarse: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def check_images(x: np.ndarray, y: np.ndarray, *, what: str, num_classes: int,
                 image_shape: tuple[int, int, int] | None = None) -> None:
    """Raise DataError unless `x` is uint8 NHWC, `y` has one label per image, all in range.

    `what` names the source (file and split) so the message tells the user where to look.
    """
    if x.dtype != np.uint8 or x.ndim != 4:
        raise DataError(f"{what}: images must be uint8 [N, H, W, C], got {x.dtype} {list(x.shape)}")
    if image_shape is not None and tuple(x.shape[1:]) != tuple(image_shape):
        raise DataError(f"{what}: images must be {list(image_shape)} (H, W, C), got {list(x.shape[1:])}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: labels must be integers, one per image; "
                        f"got {y.dtype} {list(y.shape)} for {len(x)} images")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{what}: labels must lie in [0, {num_classes - 1}], "
                        f"found {int(y.min())}..{int(y.max())}")
