"""A user's own images as a folder tree: one sub-folder per class (torchvision's ImageFolder layout).

    root/cat/0001.jpg, root/dog/0002.png, ...            one tree: a test split is held out
    root/train/cat/..., root/test/cat/... (or val/)     separate training and test trees

Classes are the training tree's sub-folders in sorted order (class 0 first),
images every file with an image extension below a class folder, in sorted
path order. Hidden files and folders are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tailsam.data.imagefiles import ImageFiles
from tailsam.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
TEST_FOLDERS = ("test", "val")


def split_folders(root: Path) -> tuple[Path, Path | None]:
    """(training tree, test tree or None): root/train with root/test or root/val, else root alone."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; point data.root (or --data-root) at the image tree")
    test = next((root / name for name in TEST_FOLDERS if (root / name).is_dir()), None)
    if (root / "train").is_dir() and test is not None:
        return root / "train", test
    return root, None


def class_folders(tree: Path) -> list[str]:
    """The class names: the tree's visible sub-folders, sorted."""
    names = sorted(entry.name for entry in os.scandir(tree) if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise DataError(f"{tree}: holds no class folders; expected one sub-folder of images per class")
    return names


def read_image_folder(root: Path, tree: Path, classes: list[str], *, require_all: bool = True) -> ImageFiles:
    """Every image below tree/<class> for each of `classes`, with paths relative to `root`.

    `require_all`: each class folder must exist and hold an image (training
    trees); a test tree may lack classes.
    """
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(_images_below(tree / name))
        if require_all and not found:
            raise DataError(f"{tree / name}: class folder holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                            "remove it or add its images")
        paths += [os.path.relpath(path, root) for path in found]
        labels += [label] * len(found)
    if not paths:
        raise DataError(f"{tree}: holds no images of the classes {', '.join(classes[:5])}...")
    return ImageFiles.from_paths(root, paths, labels, str(tree), tuple(classes))


def holdout_split(labels: np.ndarray, num_classes: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): round(fraction * n_c) images of each class held out, chosen by `seed`.

    A class always keeps at least one training image. Both index arrays are
    sorted, so file order is kept within each part.
    """
    rng = np.random.RandomState(seed)
    test = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test.append(idx[:min(round(fraction * len(idx)), len(idx) - 1)])
    test_index = np.sort(np.concatenate(test)).astype(np.int64)
    train_index = np.setdiff1d(np.arange(len(labels)), test_index).astype(np.int64)
    return train_index, test_index


def _images_below(folder: Path) -> list[str]:
    found = []
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(here, f) for f in files
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return found
