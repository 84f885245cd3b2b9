"""Checkpoints and the run directory.

A checkpoint holds only tensors and plain containers, so `torch.load(...,
weights_only=True)` reads it and nothing in it can run code. Every file is
written to a temporary name and renamed into place, so a crash never leaves a
half-written `last.pt` or `final.json` behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torchvision

from tailsam import __version__
from tailsam.config import load_config
from tailsam.errors import TailsamWarning, UserError
from tailsam.run.precision import cpu_description

CHECKPOINT_FORMAT = 1
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write) -> None:
    """Call write(file_object) on a temporary file beside `path`, then rename it over `path`.

    A write that fails (disk full, no permission) leaves `path` as it was and
    raises a UserError saying so.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; give it a normal file's permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        # torch.save reports a failed write as a RuntimeError from its zip writer.
        if isinstance(err, OSError) or (isinstance(err, RuntimeError) and "write" in str(err)):
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
            kept = f"the previous {path.name} is kept" if path.exists() else f"{path.name} was not written"
            raise UserError(f"cannot write {path} ({reason}); {kept}: free some space or fix the "
                            "permissions, then run the same command again") from None
        raise


def _readable_json(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text()), dict)
    except (OSError, ValueError):
        return False


def _is_config(path: Path) -> bool:
    """Whether `path` is a tailsam config.json."""
    try:
        load_config(path)
    except UserError:
        return False
    return True


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(data, indent=1) + "\n").encode()))


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save({"format": CHECKPOINT_FORMAT, **state}, f))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by tailsam; a UserError names the file if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint; give a run directory or its checkpoints/last.pt")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))   # an object other than tensors and plain containers
        if found:
            raise UserError(f"{path}: holds a Python object ({found.group(1)}) that a tailsam checkpoint never has; "
                            "loading it could run code, so tailsam does not: use a checkpoint written by "
                            "tailsam") from None
        raise UserError(f"{path}: not a readable tailsam checkpoint (not a torch file); give a run directory "
                        "or its checkpoints/last.pt") from None
    except Exception as err:  # truncated or not a torch file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: not a readable tailsam checkpoint ({reason}); "
                        "it may be truncated: use an intact copy") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a tailsam checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return state


def environment(device: torch.device) -> dict:
    """Versions, device and git revision, for env.json."""
    env = {
        "tailsam": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(), "device": str(device), "threads": torch.get_num_threads(),
        "cpu": cpu_description(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    try:
        env["git_revision"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["git_revision"] = None
    return env


# What a run directory holds before its config.json exists: files of tailsam's own (a sweep writes
# train.log and usage.json before the run starts; .lock is the ownership lock). Anything else in a
# folder without config.json means the folder is not a run, and tailsam will not write into it.
RUN_FILES = frozenset({"config.json", "env.json", "data.json", "metrics.jsonl", "final.json", "checkpoints",
                       "tensorboard", "hessian", "train.log", "usage.json", ".lock"})
NEW, RESUME, FINISHED = "new", "resume", "finished"


class RunDir:
    """The files of one run (DESIGN.md contract) under `root`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if str(root) == "":
            raise UserError("--out is empty; give a directory (new, or a run to resume)")
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--out {self.root} is a file; give a directory (new, or a run to resume)")
        self.config = self.root / "config.json"
        self.env = self.root / "env.json"
        self.data = self.root / "data.json"
        self.metrics = self.root / "metrics.jsonl"
        self.final = self.root / "final.json"
        self.checkpoint = self.root / "checkpoints" / "last.pt"
        self.lock_file = self.root / ".lock"

    def status(self) -> str:
        """NEW (nothing to keep), RESUME (a checkpoint) or FINISHED (final.json and its checkpoint).

        A UserError, and nothing written, for a folder that is not a run and
        for a finished run whose checkpoint is gone: training there would
        overwrite files it cannot rebuild.
        """
        if self.final.is_file() and not self.checkpoint.is_file():
            raise UserError(f"{self.root} holds a finished run (final.json) whose {self.checkpoint} is missing; "
                            "it is kept as it is: choose another --out")
        if self.checkpoint.is_file():   # a damaged final.json is written again by resuming the last checkpoint
            return FINISHED if _readable_json(self.final) else RESUME
        try:
            names = [p.name for p in self.root.iterdir()] if self.root.is_dir() else []
        except OSError as err:
            raise UserError(f"cannot read --out {self.root} ({err.strerror}); give a folder you can write to") from None
        foreign = sorted(name for name in names if name not in RUN_FILES)
        if foreign and not _is_config(self.config):   # another program's config.json is not a run either
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise UserError(f"--out {self.root} is not empty and not a tailsam run (it holds {shown}); "
                            "give a new or empty folder, or a run directory to resume")
        return NEW

    def lock(self):
        """Take the run directory for this process: an open file holding an exclusive lock, until closed.

        The kernel releases the lock when the process ends, however it ends. A
        UserError names the process holding it.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.lock_file, "a+")
        except OSError as err:
            raise UserError(f"cannot write in the run directory {self.root} ({err.strerror}); give an --out "
                            "you can write to") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"{self.root} is in use by {holder}; wait for it to end, or choose another --out") from None
        except OSError as err:   # a filesystem without flock (some cluster filesystems): go on, unguarded
            warnings.warn(TailsamWarning(f"cannot lock {self.lock_file} ({err.strerror}); nothing stops a second "
                                         "process from training into the same --out"), stacklevel=2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"tailsam pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        return handle

    def create(self) -> None:
        try:
            self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create the run directory {self.root}: {err.strerror}") from None

    def read_metrics(self) -> list[dict]:
        """The metrics.jsonl records. A torn last line (no newline: the process died while appending it)
        is left out, since its epoch was never checkpointed; any other unreadable line is a UserError."""
        if not self.metrics.is_file():
            return []
        text = self.metrics.read_text(errors="replace")
        lines = text.split("\n")
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
                if number == len(lines):   # the last line, without its newline: torn
                    break
                raise UserError(f"{self.metrics}: line {number} is not a metrics record; restore the file "
                                "from a copy, or start the run again in another --out")
            records.append(record)
        return records

    def append_metrics(self, record: dict) -> None:
        try:
            with open(self.metrics, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as err:   # a torn line is dropped on resume (read_metrics)
            raise UserError(f"cannot write {self.metrics} ({err.strerror}); free some space or fix the "
                            "permissions, then run the same command to resume from the last checkpoint") from None

    def keep_metrics_through(self, epoch: int) -> None:
        """Drop lines of epochs after `epoch` (written after the checkpoint a run resumes from)."""
        kept = [r for r in self.read_metrics() if r["epoch"] <= epoch]
        atomic_write(self.metrics, lambda f: f.write("".join(json.dumps(r) + "\n" for r in kept).encode()))
