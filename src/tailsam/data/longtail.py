"""Long-tailed subsets exactly as Cao et al. (2019, LDAM-DRW) build them.

Class c of C keeps n_c images: `int(n_max * r ** (c / (C - 1)))` for the exp
profile, or n_max for the first C // 2 classes and `int(n_max * r)` for the rest
for the step profile, with r = 1 / imbalance ratio. The images: seed a numpy
RandomState with the data seed, then for each class in label order shuffle that
class's indices and keep the first n_c. A RandomState seeded with s draws the
same stream as `np.random.seed(s)`, so this matches the reference code without
touching numpy's global state.

GLMC's code picks each class's images with `np.random.choice(n_available, n_c,
replace=False)` from the stream seeded 3407 instead. numpy's choice without
replacement is `permutation(n_available)[:n_c]`, which draws exactly what the
shuffle above draws: GLMC's subset is this protocol's with data seed 3407
(tests/test_longtail.py checks it against choice). Its normalisation differs
for CIFAR-10: data.protocol=glmc (data/catalog.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from tailsam.errors import ConfigError, DataError

PROFILES = ("exp", "step")
# data.protocol: whose normalisation to use; with its seed (GLMC: data.seed=3407) also whose subset.
# first-n (ImbSAM's and SSE-SAM's code): each class's first n_c images in file order, no shuffle.
PROTOCOLS = ("ldam", "glmc", "first-n")


def longtail_counts(n_max: int, num_classes: int, profile: str = "exp", ratio: float = 100.0) -> list[int]:
    """Images per class for an imbalance `ratio` (n_max / n_min; 1 = balanced)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown long-tail profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    if not ratio >= 1:
        raise ConfigError(f"imbalance ratio must be >= 1 (1 = balanced), got {ratio}")
    r = 1.0 / ratio
    if profile == "step":
        return [n_max if c < num_classes // 2 else int(n_max * r) for c in range(num_classes)]
    if num_classes == 1:
        return [n_max]
    return [int(n_max * r ** (c / (num_classes - 1))) for c in range(num_classes)]


@dataclass(frozen=True)
class LongTailSplit:
    """The selected training images: per-class counts and indices into the original set.

    `indices` are in selection order: class 0's picks in shuffled order, then class 1's, ...
    """

    counts: tuple[int, ...]
    indices: np.ndarray
    profile: str
    ratio: float
    seed: int

    def indices_sha256(self) -> str:
        """sha256 of the indices as little-endian int64 bytes, in selection order."""
        return indices_sha256(self.indices)


def indices_sha256(indices: np.ndarray) -> str:
    """sha256 of `indices` as little-endian int64 bytes: data.json's fingerprint of a training selection."""
    return hashlib.sha256(np.asarray(indices).astype("<i8").tobytes()).hexdigest()


def select_longtail(labels: np.ndarray, num_classes: int, *, profile: str = "exp", ratio: float = 100.0,
                    seed: int = 0, n_max: int | None = None, shuffle: bool = True) -> LongTailSplit:
    """Pick a long-tailed subset of a labelled training set by the protocol above.

    `n_max` (images of the largest class) defaults to the smallest class's size,
    which for the balanced CIFAR training sets is the usual 5000 / 500.
    `shuffle=False` keeps each class's first n_c images in file order (data.protocol=first-n; no seed).
    """
    labels = np.asarray(labels)
    available = np.bincount(labels, minlength=num_classes)
    if n_max is None:
        n_max = int(available.min())
    counts = longtail_counts(n_max, num_classes, profile, ratio)
    if min(counts) < 1:
        c = counts.index(min(counts))
        raise DataError(f"imbalance ratio {ratio:g} leaves class {c} with no training images ({n_max} images in "
                        f"the largest class); use a ratio of at most {n_max}")
    short = [c for c in range(num_classes) if counts[c] > available[c]]
    if short:
        c = short[0]
        raise DataError(f"class {c} has {available[c]} training images but the long-tail profile "
                        f"asks for {counts[c]}; lower n_max")
    rng = np.random.RandomState(seed)
    picks = []
    for c in range(num_classes):
        idx = np.where(labels == c)[0]
        if shuffle:
            rng.shuffle(idx)
        picks.append(idx[:counts[c]])
    indices = np.concatenate(picks).astype(np.int64)
    return LongTailSplit(tuple(counts), indices, profile, float(ratio), int(seed))
