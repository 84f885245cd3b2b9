"""Readers for the published split files of ImageNet-LT and iNaturalist 2018.

Two formats, told apart by the file name:
- split lists (ImageNet_LT_train.txt, iNaturalist18_train.txt, ...): one image
  per line, `relative/path.jpg label`, the label a class index from 0;
- iNaturalist's official JSON annotations (train2018.json, val2018.json),
  COCO-like: `images` [{id, file_name}], `annotations` [{image_id,
  category_id}], `categories` [{id, name}]. Class c is the c-th smallest
  category id (iNaturalist 2018's ids are already 0..8141, so labels equal
  the ids and agree with the text lists).

Paths stay relative, as written, to the data root the list belongs to.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tailsam.data.imagefiles import ImageFiles
from tailsam.errors import DataError

LINE_FORMAT = "`relative/path.jpg label`"


def read_file_list(path: Path, num_classes: int | None = None, *, root: Path | None = None) -> ImageFiles:
    """Read a split list, or an iNaturalist JSON file when `path` ends in .json, as files under `root`
    (default: the list's folder).

    With `num_classes`, every label must lie in [0, num_classes). Any problem
    raises DataError naming the file (and line) and what is expected.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such list file; point data.root at the folder holding it or set the "
                        "list path (data.train_list / data.test_list)")
    paths, labels, class_names = _read_json(path) if path.suffix.lower() == ".json" else _read_lines(path)
    if not paths:
        raise DataError(f"{path}: lists no images")
    labels = np.asarray(labels, dtype=np.int64)
    if num_classes is not None and labels.max() >= num_classes:
        line = int(np.argmax(labels >= num_classes))
        raise DataError(f"{path}: label {int(labels[line])} of {paths[line]} is outside "
                        f"0..{num_classes - 1} (this dataset has {num_classes} classes)")
    return ImageFiles.from_paths(root if root is not None else path.parent, paths, labels, str(path), class_names)


def _read_lines(path: Path) -> tuple[list[str], list[int], None]:
    paths, labels = [], []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read this list file ({err})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        # rsplit: the label is the last field, so a path with spaces still parses.
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not _is_label(parts[1]):
            raise DataError(f"{path}, line {number}: expected {LINE_FORMAT} with an integer label >= 0, "
                            f"found {line.strip()[:80]!r}")
        paths.append(parts[0].strip())
        labels.append(int(parts[1]))
    return paths, labels, None


def _is_label(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _read_json(path: Path) -> tuple[list[str], list[int], tuple[str, ...]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        images = {image["id"]: image["file_name"] for image in data["images"]}
        labels_of = {note["image_id"]: note["category_id"] for note in data["annotations"]}
        categories = sorted((c["id"], str(c.get("name", c["id"]))) for c in data["categories"])
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{path}: not a readable JSON annotation file ({err})") from None
    except (KeyError, TypeError) as err:
        problem = f"missing {err}" if isinstance(err, KeyError) else str(err)
        raise DataError(f"{path}: not an iNaturalist/COCO-style annotation file: needs images [{{id, file_name}}], "
                        f"annotations [{{image_id, category_id}}] and categories [{{id, name}}] ({problem})") from None
    class_of = {category_id: c for c, (category_id, _) in enumerate(categories)}
    paths, labels = [], []
    for image_id, file_name in images.items():
        if image_id not in labels_of:
            raise DataError(f"{path}: image {image_id} ({file_name}) has no annotation; a training or "
                            "validation file annotates every image (the test file has no labels)")
        category = labels_of[image_id]
        if category not in class_of:
            raise DataError(f"{path}: image {image_id} ({file_name}) has category {category}, "
                            "which is not among the file's categories")
        paths.append(file_name)
        labels.append(class_of[category])
    return paths, labels, tuple(name for _, name in categories)
