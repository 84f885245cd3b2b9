"""Tiny JPEG datasets in the on-disk formats of ImageNet-LT, iNaturalist 2018 and a class-per-folder tree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

IMAGENET_LISTS = ("ImageNet_LT_train.txt", "ImageNet_LT_test.txt")


def write_jpeg(path: Path, rng: np.random.RandomState, label: int, size: tuple[int, int] = (32, 24)) -> None:
    """A noisy image tinted by its label (so crops and flips change pixels), width x height = `size`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    base = np.array([40 + 20 * (label % 10), 200 - 15 * (label % 10), 90], dtype=np.int16)
    pixels = base + rng.randint(-40, 41, (size[1], size[0], 3))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def write_split(root: Path, folder: str, counts: Sequence[int], rng: np.random.RandomState,
                size: tuple[int, int] = (32, 24)) -> list[str]:
    """counts[c] images of class c under root/folder/c<c>/; returns the `path label` lines."""
    lines = []
    for label, n in enumerate(counts):
        for i in range(n):
            relative = f"{folder}/c{label:03d}/{i:04d}.jpg"
            write_jpeg(root / relative, rng, label, size)
            lines.append(f"{relative} {label}")
    return lines


def write_imagenet_lt(root: Path, train_counts: Sequence[int], test_counts: Sequence[int], seed: int = 0,
                      size: tuple[int, int] = (32, 24)) -> Path:
    """ImageNet-LT's layout: train/ and val/ images, ImageNet_LT_train.txt / ImageNet_LT_test.txt lists."""
    rng = np.random.RandomState(seed)
    for name, folder, counts in zip(IMAGENET_LISTS, ("train", "val"), (train_counts, test_counts)):
        (root / name).write_text("\n".join(write_split(root, folder, counts, rng, size)) + "\n")
    return root


def write_inat_json(root: Path, name: str, folder: str, counts: Sequence[int], category_ids: Sequence[int],
                    seed: int = 0) -> Path:
    """An iNaturalist-2018-style annotation file: images, annotations, categories (ids `category_ids`)."""
    lines = write_split(root, folder, counts, np.random.RandomState(seed))
    images, annotations = [], []
    for image_id, line in enumerate(lines, start=100):
        path, label = line.rsplit(maxsplit=1)
        images.append({"id": image_id, "file_name": path, "width": 32, "height": 24})
        annotations.append({"id": image_id, "image_id": image_id, "category_id": category_ids[int(label)]})
    categories = [{"id": cid, "name": f"species {cid}", "supercategory": "Plantae"} for cid in reversed(category_ids)]
    path = root / name
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def write_folder_tree(root: Path, counts: Sequence[int], seed: int = 0) -> list[str]:
    """One folder per class (named class_<c>, so sorted names give label c), counts[c] images each."""
    rng = np.random.RandomState(seed)
    names = [f"class_{c}" for c in range(len(counts))]
    for name, label, n in zip(names, range(len(counts)), counts):
        for i in range(n):
            write_jpeg(root / name / f"{i:04d}.jpg", rng, label)
    return names
