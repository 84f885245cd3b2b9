"""A miniature CIFAR written in the official "python version" format (folder and archive)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from tailsam.data import CifarSpec


@dataclasses.dataclass
class MiniCifar:
    root: Path           # holds the extracted folder
    spec: CifarSpec      # the official layout with this fixture's md5 sums
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    coarse_train: np.ndarray | None


def _pickle_bytes(obj) -> bytes:
    # Protocol 3 stores bytes natively, as the official (Python 2) files store str.
    return pickle.dumps(obj, protocol=3)


def write_mini_cifar(root: Path, official: CifarSpec, per_class: int = 3, seed: int = 0) -> MiniCifar:
    """Write a tiny dataset in the official CIFAR python format (folder and .tar.gz archive)."""
    rng = np.random.RandomState(seed)
    c = official.num_classes
    n_train, n_test = per_class * c, 2 * c
    y_train = rng.permutation(np.repeat(np.arange(c), per_class))
    y_test = np.arange(n_test) % c
    x_train = rng.randint(0, 256, (n_train, 32, 32, 3)).astype(np.uint8)
    x_test = rng.randint(0, 256, (n_test, 32, 32, 3)).astype(np.uint8)
    coarse_train = y_train // 5 if official.coarse_label_key else None

    def batch(x, y, coarse):
        # Official rows: 1024 red bytes, then green, then blue.
        entry = {b"data": x.transpose(0, 3, 1, 2).reshape(len(x), 3072), official.label_key: y.tolist()}
        if official.coarse_label_key:
            entry[official.coarse_label_key] = coarse.tolist()
        return _pickle_bytes(entry)

    files = {}
    chunks = np.array_split(np.arange(n_train), len(official.train_files))
    for name, rows in zip(official.train_files, chunks):
        files[name] = batch(x_train[rows], y_train[rows], None if coarse_train is None else coarse_train[rows])
    files[official.test_files[0]] = batch(x_test, y_test, y_test // 5)
    meta = {official.names_key: [f"class{i}".encode() for i in range(c)]}
    if official.coarse_names_key:
        meta[official.coarse_names_key] = [f"super{i}".encode() for i in range(c // 5)]
    files[official.meta_file] = _pickle_bytes(meta)

    folder = root / official.folder
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    archive = root / official.archive
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{official.folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    spec = dataclasses.replace(
        official,
        md5={name: hashlib.md5(data).hexdigest() for name, data in files.items()},
        archive_md5=hashlib.md5(archive.read_bytes()).hexdigest(),
        url=archive.resolve().as_uri(),
    )
    return MiniCifar(root, spec, x_train, y_train, x_test, y_test, coarse_train)
