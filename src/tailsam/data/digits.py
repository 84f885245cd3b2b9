"""scikit-learn's bundled handwritten digits (8x8 grey, 10 classes): the demo data, no download.

The 1,797 images are split once, with a fixed seed that is independent of the
data seed, into a balanced training set of 120 per class and a balanced test set
of 50 per class (every class has at least 174 images). Long-tailed subsetting
then works on the training set exactly as on CIFAR.
"""

from __future__ import annotations

import numpy as np

from tailsam.data.images import ImageData

TRAIN_PER_CLASS = 120
TEST_PER_CLASS = 50
_SPLIT_SEED = 20221128  # fixed forever: changing it changes every demo result


def load_digits() -> ImageData:
    """The digits as uint8 [N, 8, 8, 1] images (grey levels 0..16 stretched to 0..255)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    rng = np.random.RandomState(_SPLIT_SEED)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:TEST_PER_CLASS])
        train.append(idx[TEST_PER_CLASS:TEST_PER_CLASS + TRAIN_PER_CLASS])
    # Keep the training set in class-interleaved original order, like CIFAR's files.
    train_idx, test_idx = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    return ImageData(
        name="digits",
        x_train=images[train_idx], y_train=labels[train_idx],
        x_test=images[test_idx], y_test=labels[test_idx],
        class_names=tuple(str(c) for c in range(10)),
    )
