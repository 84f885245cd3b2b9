"""Image-file datasets: split lists, iNaturalist JSON, folder trees, selection, checks and data.json."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from jpeg_fixture import write_folder_tree, write_imagenet_lt, write_inat_json, write_jpeg
from tailsam.config import Config, DataConfig, EvalConfig, OptimConfig, apply_overrides
from tailsam.data import longtail_counts, read_file_dataset, read_file_list, select_longtail
from tailsam.data.imagefolder import holdout_split
from tailsam.errors import ConfigError, DataError
from tailsam.eval.groups import class_groups
from tailsam.data import build_data

CPU = torch.device("cpu")


def file_config(dataset: str, root, *overrides: str) -> Config:
    base = Config(data=DataConfig(dataset=dataset, root=str(root), image_size=16, resize=18, workers=0),
                  optim=OptimConfig(batch_size=8), eval=EvalConfig(batch_size=8))
    return apply_overrides(base, list(overrides))


# --- split lists -------------------------------------------------------------------------------

def test_split_list_parses_paths_and_labels(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("train/a/1.jpg 0\n\ntrain/b b/2.JPEG 7\r\nval/3.jpg   12  \n")
    files = read_file_list(path, num_classes=13)
    assert files.relative_paths() == ["train/a/1.jpg", "train/b b/2.JPEG", "val/3.jpg"]
    assert files.root == tmp_path and files.path(0) == tmp_path / "train/a/1.jpg"
    assert files.labels.tolist() == [0, 7, 12] and files.labels.dtype == np.int64
    assert files.class_names is None


@pytest.mark.parametrize("text, num_classes, match", [
    ("a.jpg 0\nb.jpg\n", None, r"line 2: expected `relative/path.jpg label`"),
    ("a.jpg 0\nb.jpg one\n", None, "line 2"),
    ("a.jpg -1\n", None, "line 1"),
    ("a.jpg 0\nb.jpg 1000\n", 1000, r"label 1000 of b.jpg is outside 0..999"),
    ("\n\n", None, "lists no images"),
])
def test_bad_split_lists_name_the_file_and_line(tmp_path, text, num_classes, match):
    path = tmp_path / "list.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as error:
        read_file_list(path, num_classes)
    assert str(path) in str(error.value)


def test_missing_list_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such list file"):
        read_file_list(tmp_path / "ImageNet_LT_train.txt")


# --- iNaturalist JSON --------------------------------------------------------------------------

def test_inat_json_maps_sorted_category_ids_to_labels(tmp_path):
    # Category ids 5, 9, 30 (listed in reverse in the file): classes 0, 1, 2 in id order.
    path = write_inat_json(tmp_path, "train2018.json", "train_val2018", [3, 1, 2], [5, 9, 30])
    files = read_file_list(path)
    assert files.labels.tolist() == [0, 0, 0, 1, 2, 2]
    assert files.relative(3) == "train_val2018/c001/0000.jpg"
    assert files.class_names == ("species 5", "species 9", "species 30")


@pytest.mark.parametrize("data, match", [
    ({"images": [], "categories": []}, "missing 'annotations'"),
    ({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [], "categories": []}, "image 1 .a.jpg. has no"),
    ({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "category_id": 4}],
      "categories": [{"id": 3, "name": "x"}]}, "category 4"),
])
def test_bad_inat_json_is_a_data_error(tmp_path, data, match):
    path = tmp_path / "val2018.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=match):
        read_file_list(path)


def test_inat2018_reads_official_json_through_the_config(tmp_path):
    ids = list(range(8142))
    counts = [0] * 8142
    counts[:3] = [4, 2, 1]
    write_inat_json(tmp_path, "train2018.json", "train_val2018", counts, ids)
    write_inat_json(tmp_path, "val2018.json", "train_val2018_val", [1] * 3 + [0] * 8139, ids, seed=1)
    data = build_data(file_config("inat2018", tmp_path, "data.train_list=train2018.json",
                                  "data.test_list=val2018.json", "data.classes=3"), CPU)
    assert data.counts == [4, 2, 1]
    assert data.summary["class_names"] == ["species 0", "species 1", "species 2"]
    assert data.summary["n_test"] == 3


# --- folder trees ------------------------------------------------------------------------------

def test_folder_tree_classes_are_sorted_folders_and_hidden_or_other_files_are_ignored(tmp_path):
    write_folder_tree(tmp_path, [3, 2])
    (tmp_path / "class_0" / "notes.txt").write_text("not an image")
    write_jpeg(tmp_path / "class_1" / ".hidden.jpg", np.random.RandomState(0), 1)
    write_jpeg(tmp_path / ".cache" / "x.jpg", np.random.RandomState(0), 1)
    write_jpeg(tmp_path / "class_1" / "sub" / "deep.PNG", np.random.RandomState(0), 1)
    split = read_file_dataset("folder", tmp_path, holdout=0.4, seed=0)
    assert split.class_names == ("class_0", "class_1") and split.num_classes == 2
    names = sorted(split.train.relative(i) for i in range(len(split.train))) + \
        sorted(split.test.relative(i) for i in range(len(split.test)))
    assert len(names) == 6 and "class_1/sub/deep.PNG" in names
    assert not any("hidden" in n or "cache" in n or n.endswith(".txt") for n in names)


def test_holdout_keeps_a_fraction_of_each_class_and_at_least_one_training_image():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 1 + [3] * 2)
    train, test = holdout_split(labels, 4, 0.2, seed=0)
    assert np.bincount(labels[test], minlength=4).tolist() == [2, 1, 0, 0]   # round(0.2 n), n - 1 at most
    assert np.bincount(labels[train], minlength=4).tolist() == [8, 4, 1, 2]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    again, _ = holdout_split(labels, 4, 0.2, seed=0)
    other, _ = holdout_split(labels, 4, 0.2, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_folder_with_train_and_val_trees_uses_them(tmp_path):
    write_folder_tree(tmp_path / "train", [3, 2, 1])
    write_folder_tree(tmp_path / "val", [1, 0, 2], seed=1)
    split = read_file_dataset("folder", tmp_path)
    assert split.train.labels.tolist() == [0, 0, 0, 1, 1, 2]
    assert split.test.labels.tolist() == [0, 2, 2]
    assert split.test.relative(0) == "val/class_0/0000.jpg"


@pytest.mark.parametrize("make, match", [
    (lambda root: (write_folder_tree(root, [2]), (root / "class_1").mkdir()), "class_1: class folder holds no images"),
    (lambda root: root.mkdir(), "holds no class folders"),
    (lambda root: (write_folder_tree(root / "train", [1]), write_folder_tree(root / "test", [1, 1])),
     "'class_1' has no counterpart"),
    (lambda root: None, "no such folder"),
])
def test_bad_folder_trees_are_data_errors(tmp_path, make, match):
    root = tmp_path / "tree"
    make(root)
    with pytest.raises(DataError, match=match):
        read_file_dataset("folder", root)


def test_folder_longtail_subset_follows_the_cao_protocol(tmp_path):
    write_folder_tree(tmp_path, [24] * 4)
    config = file_config("folder", tmp_path, "data.longtail=true", "data.ratio=10", "data.holdout=0.25",
                         "data.seed=3")
    data = build_data(config, CPU)
    assert data.counts == longtail_counts(18, 4, "exp", 10) == [18, 8, 3, 1]   # n_max: the 18 left per class
    # The same images as select_longtail on the tree's training part (file order within each class).
    split = read_file_dataset("folder", tmp_path, holdout=0.25, seed=3)
    chosen = select_longtail(split.train.labels, 4, ratio=10, seed=3).indices
    assert data.summary["indices_sha256"] == hashlib.sha256(chosen.astype("<i8").tobytes()).hexdigest()
    assert data.summary["profile"] == "exp" and data.summary["ratio"] == 10
    assert data.summary["n_test"] == 24 and data.summary["class_names"] == ["class_0", "class_1", "class_2", "class_3"]


# --- selection, groups and data.json ------------------------------------------------------------

def test_many_medium_few_of_a_hand_made_count_table(tmp_path):
    # ImageNet-LT's convention: many > 100 training images, medium 20..100, few < 20.
    counts = [150, 101, 100, 20, 19, 1]
    write_imagenet_lt(tmp_path, counts, [1] * 6, size=(8, 8))
    data = build_data(file_config("lists", tmp_path, "data.train_list=ImageNet_LT_train.txt",
                                  "data.test_list=ImageNet_LT_test.txt"), CPU)
    assert data.counts == counts
    groups = class_groups(data.counts)
    assert (groups["many"], groups["medium"], groups["few"]) == ([0, 1], [2, 3], [4, 5])
    assert (groups["head"], groups["mid"], groups["tail"]) == ([0, 1], [2, 3], [4, 5])


def test_classes_n_max_and_test_per_class_select_the_first_images_in_list_order(tmp_path):
    write_imagenet_lt(tmp_path, [5, 3, 2, 4], [3, 3, 3, 3])
    data = build_data(file_config("imagenet-lt", tmp_path, "data.classes=3", "data.n_max=3",
                                  "data.test_per_class=2"), CPU)
    assert data.counts == [3, 3, 2] and data.summary["n_train"] == 8 and data.summary["n_test"] == 6
    kept = [0, 1, 2, 5, 6, 7, 8, 9]   # list positions: class 0 is lines 0-4, class 1 lines 5-7, class 2 lines 8-9
    assert data.summary["indices_sha256"] == hashlib.sha256(np.array(kept, "<i8").tobytes()).hexdigest()
    assert data.summary["train_list_sha256"] == hashlib.sha256(
        (tmp_path / "ImageNet_LT_train.txt").read_bytes()).hexdigest()
    assert len(data.train) == 1 and len(data.test) == 1 and data.in_channels == 3


def test_missing_and_unreadable_images_are_named_or_skipped_and_counted(tmp_path):
    write_imagenet_lt(tmp_path, [4, 4], [2, 2])
    (tmp_path / "train/c000/0001.jpg").unlink()
    (tmp_path / "train/c001/0002.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "val/c001/0000.jpg").write_bytes(b"")
    config = file_config("lists", tmp_path, "data.train_list=ImageNet_LT_train.txt",
                         "data.test_list=ImageNet_LT_test.txt")
    with pytest.raises(DataError) as error:
        build_data(config, CPU)
    message = str(error.value)
    assert "2 of 8 images" in message and "\n" not in message and "data.skip_bad=true" in message
    assert "train/c000/0001.jpg (missing)" in message and "train/c001/0002.jpg (not an image" in message

    data = build_data(apply_overrides(config, ["data.skip_bad=true"]), CPU)
    assert data.counts == [3, 3] and data.summary["n_test"] == 3
    assert data.summary["skipped_files"] == {"train": 2, "test": 1, "first": [
        "train/c000/0001.jpg", "train/c001/0002.jpg", "val/c001/0000.jpg"]}


def test_file_dataset_errors_for_config_mistakes(tmp_path):
    write_imagenet_lt(tmp_path, [2, 2], [1, 1])
    with pytest.raises(ConfigError, match="needs data.train_list and data.test_list"):
        build_data(file_config("lists", tmp_path), CPU)
    with pytest.raises(ConfigError, match="hessian.every"):
        build_data(file_config("lists", tmp_path, "hessian.every=10"), CPU)
    with pytest.raises(DataError, match=r"class\(es\) \[2\] of 0..2 have no training images"):
        build_data(file_config("imagenet-lt", tmp_path, "data.classes=3"), CPU)
    with pytest.raises(ConfigError, match="data.resize must be >= data.image_size"):
        file_config("folder", tmp_path, "data.image_size=64", "data.resize=32")
