"""Datasets read from image files: where each finds its training and test images under the data root.

    imagenet-lt  ImageNet-LT (Liu et al. 2019): root = the ImageNet folder (train/, val/) holding
                 ImageNet_LT_train.txt and ImageNet_LT_test.txt; 1000 classes
    inat2018     iNaturalist 2018: root holds train_val2018/ and iNaturalist18_train.txt /
                 iNaturalist18_val.txt (or the official train2018.json / val2018.json); 8142 classes
    lists        your own split lists (data.train_list, data.test_list); classes = largest label + 1
    folder       your own folder tree, one sub-folder per class (see data/imagefolder.py)

List paths are relative to the root unless absolute. The files are only
listed here; the loader decodes them (data/file_loader.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tailsam.data.filelists import FileList, read_file_list
from tailsam.data.imagefiles import ImageFiles
from tailsam.data.imagefolder import class_folders, holdout_split, read_image_folder, split_folders
from tailsam.errors import ConfigError, DataError
from tailsam.registry import Registry

# Metadata: `num_classes` (None: found in the data), `paper`.
FILE_DATASETS = Registry("file dataset")


@dataclass(frozen=True)
class ListDataset:
    """A dataset given by a training and a test split file; None list names must come from the config."""

    num_classes: int | None
    train_list: str | None
    test_list: str | None


@dataclass(frozen=True)
class FolderDataset:
    """A dataset given by a class-per-folder tree."""


@dataclass(frozen=True)
class FileSplit:
    """A file dataset's training and test images, its class count and names, and the list files read."""

    train: ImageFiles
    test: ImageFiles
    num_classes: int
    class_names: tuple[str, ...] | None
    list_files: dict[str, Path]       # "train" / "test" -> list file, for data.json's hashes


FILE_DATASETS.register("imagenet-lt", num_classes=1000, paper="Liu et al. 2019, Large-Scale Long-Tailed Recognition")(
    ListDataset(1000, "ImageNet_LT_train.txt", "ImageNet_LT_test.txt"))
FILE_DATASETS.register("inat2018", num_classes=8142, paper="Van Horn et al. 2018, The iNaturalist Species "
                       "Classification and Detection Dataset")(
    ListDataset(8142, "iNaturalist18_train.txt", "iNaturalist18_val.txt"))
FILE_DATASETS.register("lists", num_classes=None, paper="")(ListDataset(None, None, None))
FILE_DATASETS.register("folder", num_classes=None, paper="")(FolderDataset())


def is_file_dataset(name: str) -> bool:
    """Whether `name` is read from image files (rather than held in memory like CIFAR)."""
    return name in FILE_DATASETS


def read_file_dataset(name: str, root: Path, *, train_list: str | None = None, test_list: str | None = None,
                      holdout: float = 0.2, seed: int = 0) -> FileSplit:
    """List the training and test images of file dataset `name` under `root`.

    `train_list` / `test_list` replace a list dataset's default files; a
    folder tree without a test/ or val/ folder holds out `holdout` of each
    class, drawn with `seed`. Raises DataError for missing or malformed data.
    """
    spec = FILE_DATASETS.get(name).builder
    root = Path(root)
    if isinstance(spec, FolderDataset):
        if train_list or test_list:
            raise ConfigError("data.train_list / data.test_list do not apply to dataset folder (it reads the "
                              "class folders); for split lists use data.dataset=lists")
        return _read_folder(root, holdout, seed)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; point data.root (or --data-root) at the folder the "
                        f"{name} lists' paths are relative to")
    train_name, test_name = train_list or spec.train_list, test_list or spec.test_list
    if train_name is None or test_name is None:
        raise ConfigError(f"dataset {name} needs data.train_list and data.test_list (split files of "
                          "`relative/path.jpg label` lines, or iNaturalist-style JSON)")
    train = read_file_list(root / train_name, spec.num_classes)
    num_classes = spec.num_classes or int(train.labels.max()) + 1
    test = read_file_list(root / test_name, num_classes)
    if train.class_names and test.class_names and test.class_names != train.class_names:
        raise DataError(f"{test.source}: its categories differ from those of {train.source}; "
                        "give the training and test files of the same release")
    return FileSplit(_files(root, train), _files(root, test), num_classes, train.class_names,
                     {"train": train.source, "test": test.source})


def _read_folder(root: Path, holdout: float, seed: int) -> FileSplit:
    train_tree, test_tree = split_folders(root)
    classes = class_folders(train_tree)
    train = read_image_folder(root, train_tree, classes)
    if test_tree is not None:
        unknown = sorted(set(class_folders(test_tree)) - set(classes))
        if unknown:
            raise DataError(f"{test_tree}: class folder {unknown[0]!r} has no counterpart in {train_tree}; "
                            "the test tree must use the training tree's class names")
        files = _files(root, train), _files(root, read_image_folder(root, test_tree, classes, require_all=False))
    else:
        both = _files(root, train)
        train_index, test_index = holdout_split(both.labels, len(classes), holdout, seed)
        files = both.subset(train_index), both.subset(test_index)
    return FileSplit(*files, len(classes), tuple(classes), {})


def _files(root: Path, files: FileList) -> ImageFiles:
    return ImageFiles.from_paths(root, files.paths, files.labels, str(files.source))
