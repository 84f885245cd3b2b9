"""Opt-in checks on the published split lists: set TAILSAM_SPLITS_DIR to the folder holding them.

    TAILSAM_SPLITS_DIR=../shared/data/splits pytest -m realdata tests/test_real_splits.py
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tailsam.data import dataset_info, read_file_list

pytestmark = pytest.mark.realdata


def published(name: str) -> Path:
    folder = os.environ.get("TAILSAM_SPLITS_DIR")
    if not folder or not (Path(folder) / name).is_file():
        pytest.skip(f"set TAILSAM_SPLITS_DIR to a folder holding {name} to run this check")
    return Path(folder) / name


def test_imagenet_lt_test_list_is_1000_classes_of_50():
    files = read_file_list(published("ImageNet_LT_test.txt"), dataset_info("imagenet-lt").num_classes)
    paths = files.relative_paths()
    assert len(paths) == 50_000 and len(set(paths)) == 50_000
    assert set(np.bincount(files.labels, minlength=1000)) == {50} and files.labels.max() == 999
    assert paths[0].startswith("val/n01440764/ILSVRC2012_val_")


def test_inaturalist18_val_list_is_8142_classes_of_3():
    files = read_file_list(published("iNaturalist18_val.txt"), dataset_info("inat2018").num_classes)
    paths = files.relative_paths()
    assert len(paths) == 24_426 and len(set(paths)) == 24_426
    assert set(np.bincount(files.labels, minlength=8142)) == {3}
    assert all(p.startswith("train_val2018/") for p in paths)
