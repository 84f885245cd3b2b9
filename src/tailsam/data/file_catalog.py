"""The training and test images of a dataset read from image files (ImageNet-LT, iNaturalist 2018,
split lists, folder trees; their entries are in data/catalog.py).

List paths are relative to the root unless absolute. The files are only
listed here; the loader decodes them (data/file_loader.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tailsam.data.catalog import FolderDataset, ListDataset, dataset_info
from tailsam.data.filelists import read_file_list
from tailsam.data.imagefiles import ImageFiles
from tailsam.data.imagefolder import class_folders, holdout_split, read_image_folder, split_folders
from tailsam.errors import ConfigError, DataError


@dataclass(frozen=True)
class FileSplit:
    """A file dataset's training and test images, its class count and names, and the list files read."""

    train: ImageFiles
    test: ImageFiles
    num_classes: int
    class_names: tuple[str, ...] | None
    list_files: dict[str, Path]       # "train" / "test" -> list file, for data.json's hashes


def read_file_dataset(name: str, root: Path, *, train_list: str | None = None, test_list: str | None = None,
                      holdout: float = 0.2, seed: int = 0) -> FileSplit:
    """List the training and test images of file dataset `name` under `root`.

    `train_list` / `test_list` replace a list dataset's default files; a
    folder tree without a test/ or val/ folder holds out `holdout` of each
    class, drawn with `seed`. Raises DataError for missing or malformed data.
    """
    spec = dataset_info(name)
    if not isinstance(spec, (ListDataset, FolderDataset)):
        raise ConfigError(f"dataset {name} is held in memory, not read from image files")
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
    train = read_file_list(root / train_name, spec.num_classes, root=root)
    num_classes = spec.num_classes or int(train.labels.max()) + 1
    test = read_file_list(root / test_name, num_classes, root=root)
    if train.class_names and test.class_names and test.class_names != train.class_names:
        raise DataError(f"{test.source}: its categories differ from those of {train.source}; "
                        "give the training and test files of the same release")
    return FileSplit(train, test, num_classes, train.class_names,
                     {"train": Path(train.source), "test": Path(test.source)})


def _read_folder(root: Path, holdout: float, seed: int) -> FileSplit:
    train_tree, test_tree = split_folders(root)
    classes = class_folders(train_tree)
    train = read_image_folder(root, train_tree, classes)
    if test_tree is not None:
        unknown = sorted(set(class_folders(test_tree)) - set(classes))
        if unknown:
            raise DataError(f"{test_tree}: class folder {unknown[0]!r} has no counterpart in {train_tree}; "
                            "the test tree must use the training tree's class names")
        files = train, read_image_folder(root, test_tree, classes, require_all=False)
    else:
        train_index, test_index = holdout_split(train.labels, len(classes), holdout, seed)
        files = train.subset(train_index), train.subset(test_index)
    return FileSplit(*files, len(classes), tuple(classes), {})
