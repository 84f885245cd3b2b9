"""Labelled image files under a root folder (what every list and folder reader returns), and the check
that each one can be opened.

Paths are kept as one numpy bytes array rather than a list of str: loader
workers are forked from the training process, and touching a Python string
writes its reference count, which would copy the page it lives on into every
worker (hundreds of MiB for iNaturalist's 437K paths); a numpy buffer is only
read, so it stays shared.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

CHECK_THREADS = 16   # opening files waits on the disk (or the network), not the CPU


@dataclass(frozen=True)
class ImageFiles:
    """Image files `root / paths[i]` with int64 `labels`; `source` names the list or folder they came from,
    and `class_names` the classes when the source names them (iNaturalist JSON, folder trees)."""

    root: Path
    paths: np.ndarray      # bytes (numpy "S"), relative to root
    labels: np.ndarray
    source: str
    class_names: tuple[str, ...] | None = None

    @classmethod
    def from_paths(cls, root: Path, paths: Sequence[str], labels: Sequence[int] | np.ndarray, source: str,
                   class_names: tuple[str, ...] | None = None) -> ImageFiles:
        encoded = np.array([os.fsencode(p) for p in paths], dtype=np.bytes_) if len(paths) else np.array([], "S1")
        return cls(Path(root), encoded, np.asarray(labels, dtype=np.int64), source, class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def relative(self, i: int) -> str:
        return os.fsdecode(self.paths[i])

    def relative_paths(self) -> list[str]:
        return [os.fsdecode(p) for p in self.paths]

    def path(self, i: int) -> Path:
        return self.root / self.relative(i)

    def subset(self, index: np.ndarray) -> ImageFiles:
        """The files at `index`, in that order."""
        return ImageFiles(self.root, self.paths[index], self.labels[index], self.source, self.class_names)


def find_unreadable(files: ImageFiles, threads: int = CHECK_THREADS) -> list[tuple[int, str]]:
    """(position, problem) of each file that is missing or whose header PIL cannot read, in file order.

    Only headers are read (a few KiB per file), so a truncated image whose
    header is intact passes here and is reported when it is decoded.
    """
    with ThreadPoolExecutor(threads) as pool:
        problems = pool.map(_header_problem, (files.path(i) for i in range(len(files))), chunksize=256)
        return [(i, problem) for i, problem in enumerate(problems) if problem is not None]


def _header_problem(path: Path) -> str | None:
    try:
        with Image.open(path):
            return None
    except FileNotFoundError:
        return "missing"
    except UnidentifiedImageError:
        return "not an image PIL can read"
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
