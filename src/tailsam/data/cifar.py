"""CIFAR-10 and CIFAR-100: the official "python version" files, their archive, or an npz.

A data root folder may hold any of (looked for in this order):
  1. `cifar10.npz` / `cifar100.npz` with x_train, y_train, x_test, y_test
     (uint8 NHWC, int labels; CIFAR-100 optionally with coarse labels and names);
  2. the extracted folder `cifar-10-batches-py/` / `cifar-100-python/`;
  3. the archive `cifar-10-python.tar.gz` / `cifar-100-python.tar.gz`, read in place.
If none is there, the archive is downloaded from the official URL (when allowed).
Official files are checked against the published md5 sums before they are unpickled.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tailsam.data.images import ImageData, check_images
from tailsam.errors import DataError


@dataclass(frozen=True)
class CifarSpec:
    """Where a CIFAR variant lives and how its official files are laid out."""

    name: str
    num_classes: int
    npz_name: str
    folder: str
    archive: str
    archive_md5: str
    url: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    md5: dict[str, str]           # official file name -> md5 of its bytes
    label_key: bytes              # label list inside each batch
    names_key: bytes              # class-name list inside the meta file
    coarse_label_key: bytes | None = None
    coarse_names_key: bytes | None = None
    class_names: tuple[str, ...] = ()  # for an npz that carries no names


CIFAR10 = CifarSpec(
    name="cifar10", num_classes=10, npz_name="cifar10.npz",
    folder="cifar-10-batches-py", archive="cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",),
    meta_file="batches.meta",
    md5={
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    label_key=b"labels", names_key=b"label_names",
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
)

CIFAR100 = CifarSpec(
    name="cifar100", num_classes=100, npz_name="cifar100.npz",
    folder="cifar-100-python", archive="cifar-100-python.tar.gz",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    train_files=("train",), test_files=("test",), meta_file="meta",
    md5={
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
    label_key=b"fine_labels", names_key=b"fine_label_names",
    coarse_label_key=b"coarse_labels", coarse_names_key=b"coarse_label_names",
)

IMAGE_SHAPE = (32, 32, 3)


def load_cifar(spec: CifarSpec, root: str | os.PathLike, *, download: bool = True) -> ImageData:
    """Read CIFAR from `root`, whichever supported form is there (see the module docstring)."""
    root = Path(root)
    if (root / spec.npz_name).is_file():
        return read_cifar_npz(root / spec.npz_name, spec)
    if (root / spec.folder).is_dir():
        return _read_official(spec, _folder_reader(root / spec.folder), where=root / spec.folder)
    archive = root / spec.archive
    if not archive.is_file():
        if not download:
            raise DataError(_missing_message(spec, root, reason="downloads are off"))
        download_archive(spec, root)
    _check_md5(archive.read_bytes(), spec.archive_md5, archive)
    with tarfile.open(archive, "r:gz") as tar:
        return _read_official(spec, _tar_reader(tar, spec.folder), where=archive)


def read_cifar_npz(path: str | os.PathLike, spec: CifarSpec) -> ImageData:
    """Read CIFAR stored as an npz of uint8 NHWC images and int labels, checking shapes and labels."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:   # missing, not npz, truncated
        raise DataError(f"{path}: not a readable .npz file ({err}); re-create it with "
                        "numpy.savez(x_train=..., y_train=..., x_test=..., y_test=...)") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}; the file must hold "
                        "x_train, y_train, x_test, y_test")
    for split in ("train", "test"):
        check_images(arrays[f"x_{split}"], arrays[f"y_{split}"], what=f"{path} ({split})",
                     num_classes=spec.num_classes, image_shape=IMAGE_SHAPE)
    names = arrays.get("fine_label_names", arrays.get("label_names"))
    return ImageData(
        name=spec.name,
        x_train=arrays["x_train"], y_train=arrays["y_train"].astype(np.int64),
        x_test=arrays["x_test"], y_test=arrays["y_test"].astype(np.int64),
        class_names=_class_names(names, spec.num_classes) if names is not None else spec.class_names
        or tuple(str(c) for c in range(spec.num_classes)),
        y_train_coarse=arrays.get("y_train_coarse"), y_test_coarse=arrays.get("y_test_coarse"),
    )


def download_archive(spec: CifarSpec, root: Path) -> Path:
    """Fetch the official archive into `root` (atomically: a partial download never remains)."""
    target = root / spec.archive
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(spec.url, timeout=30) as response:
            root.mkdir(parents=True, exist_ok=True)  # only once the server answers
            with open(partial, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
    except (urllib.error.URLError, OSError) as err:
        partial.unlink(missing_ok=True)
        raise DataError(_missing_message(spec, root, reason=f"download failed: {err}")) from None
    os.replace(partial, target)
    return target


def _missing_message(spec: CifarSpec, root: Path, *, reason: str) -> str:
    return (f"{spec.name} not found in {root.resolve()} ({reason}): expected {spec.npz_name}, "
            f"the folder {spec.folder}/ or {spec.archive}; get it from {spec.url} "
            "or point --data-root / $TAILSAM_DATA_ROOT at the folder that holds it")


# An official file's bytes, by name (from the folder or from inside the archive).
FileReader = Callable[[str], bytes]


def _folder_reader(folder: Path) -> FileReader:
    def read(name: str) -> bytes:
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: missing; the folder {folder.name}/ must hold the official "
                            "CIFAR files (re-extract the archive)")
        return path.read_bytes()
    return read


def _tar_reader(tar: tarfile.TarFile, folder: str) -> FileReader:
    def read(name: str) -> bytes:
        try:
            member = tar.extractfile(f"{folder}/{name}")
        except KeyError:
            member = None
        if member is None:
            raise DataError(f"{tar.name}: has no {folder}/{name}; the archive is not the official one")
        return member.read()
    return read


def _read_official(spec: CifarSpec, read: FileReader, *, where: Path) -> ImageData:
    def load(name: str) -> dict:
        data = read(name)
        _check_md5(data, spec.md5[name], Path(where) / name)
        return _unpickle(data)

    def split(files: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        batches = [load(name) for name in files]
        # Rows are 3072 bytes: the red plane, then green, then blue, each 32x32 row-major.
        x = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.concatenate([np.asarray(b[spec.label_key], dtype=np.int64) for b in batches])
        coarse = None
        if spec.coarse_label_key is not None:
            coarse = np.concatenate([np.asarray(b[spec.coarse_label_key], dtype=np.int64) for b in batches])
        return np.ascontiguousarray(x, dtype=np.uint8), y, coarse

    x_train, y_train, c_train = split(spec.train_files)
    x_test, y_test, c_test = split(spec.test_files)
    meta = load(spec.meta_file)
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        check_images(x, y, what=f"{where} ({name})", num_classes=spec.num_classes, image_shape=IMAGE_SHAPE)
    return ImageData(
        name=spec.name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        class_names=_class_names(meta[spec.names_key], spec.num_classes),
        y_train_coarse=c_train, y_test_coarse=c_test,
    )


def _check_md5(data: bytes, expected: str, path: Path) -> None:
    actual = hashlib.md5(data).hexdigest()
    if actual != expected:
        raise DataError(f"{path}: md5 {actual} does not match the official {expected}; "
                        "the file is corrupt or not the official release: delete it and download again")


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, nothing that could run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _unpickle(data: bytes) -> dict:
    return _ArraysOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()


def _class_names(names, num_classes: int) -> tuple[str, ...]:
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
