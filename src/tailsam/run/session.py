"""One process's session of a run: open it (new, resumed or finished), checkpoint it, write final.json.

`open_session` takes the run directory, checks what it holds against the
command, builds the training and either resumes it from `last.pt` or writes
the new run's config.json, env.json and data.json. The session then carries
what spans the run's sessions (the best epoch, the first loss, the wall time)
into every checkpoint. Rank 0 alone writes files; a refusal on rank 0 reaches
every process as the same one line.
"""

from __future__ import annotations

import json
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torchvision

from tailsam.config import Config
from tailsam.errors import TailsamWarning, UserError
from tailsam.methods import METHODS, StepOutput
from tailsam.run.build import Training, build_training
from tailsam.run.directory import (FINISHED, NEW, RESUME, RunDir, environment, load_checkpoint, save_checkpoint,
                                   write_json)
from tailsam.run.precision import resolve_auto
from tailsam.run.processes import Processes
from tailsam.run.resume import check_same_config, restore_training, trim_metrics, with_precision


class EpochTotals:
    """The epoch's training loss and accuracy, summed on the device step by step and read once, at its end.

    The loss is the mean over the epoch's steps of each step's loss (under data
    parallelism the mean over processes of their shares is the global batch's loss).
    """

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)   # loss, steps, correct, images

    def add(self, out: StepOutput) -> None:
        # Scalars from the host ride along as kernel arguments: no copy, no synchronisation.
        self.sums[0] += out.loss
        self.sums[1] += 1
        self.sums[2] += (out.logits.argmax(1) == out.labels).sum()
        self.sums[3] += len(out.labels)

    def read(self, processes: Processes) -> tuple[float, float, int]:
        """(mean loss, accuracy %, images) over all processes, then zero: the epoch's one host synchronisation."""
        loss, steps, correct, images = processes.sum(self.sums).tolist()
        self.sums.zero_()
        return loss / steps, 100.0 * correct / images, int(images)


@dataclass
class Session:
    """What one process trains, where the run lives, and what carries across the run's sessions."""

    run: RunDir
    processes: Processes
    training: Training
    totals: EpochTotals
    best: dict | None = None                 # best epoch so far, chosen on the test set (a diagnostic)
    first_loss: float | None = None          # the run's first step's loss: a loss 1000x above it warns
    earlier_seconds: float = 0.0             # the loop's wall time in earlier sessions, to their last save
    started: float = field(default_factory=time.perf_counter)
    trained_images: int = 0                  # this session, this process
    training_seconds: float = 0.0            # this session, evaluation excluded

    @property
    def config(self) -> Config:
        return self.training.config

    def save(self) -> None:
        """Checkpoint the training state (every process takes part in summing the epoch's totals)."""
        t, totals = self.training, self.processes.sum(self.totals.sums)
        if not self.processes.is_main:
            return
        save_checkpoint(self.run.checkpoint, {
            "model": t.model.state_dict(), "optimizer": t.optimizer.state_dict(),
            "loader": t.method.batches.state_dict(), "method": t.method.state_dict(),
            "epoch_totals": totals.cpu(), "rng": torch.get_rng_state(),
            "scaler": t.scaler.state_dict() if t.scaler is not None else None, "best": self.best,
            "config": t.config.to_dict(), "class_counts": t.data.counts, "data": t.data.summary,
            "world_size": self.processes.world_size, "wall_s": self.wall_seconds(), "first_loss": self.first_loss,
        })

    def wall_seconds(self) -> float:
        """The training loop's wall time over every session so far (start-up excluded)."""
        return self.earlier_seconds + time.perf_counter() - self.started

    def finish(self) -> dict:
        """Write final.json (rank 0) and return it on every process."""
        images = int(self.processes.sum(torch.tensor([self.trained_images], device=self.processes.device)).item())
        final = None
        if self.processes.is_main:
            last = self.run.read_metrics()[-1]
            final = {
                "epoch": last["epoch"], "top1": last["test"]["top1"], "group_accuracy": last["test"]["group_accuracy"],
                "per_class": last["test"]["per_class"], "train_counts": self.training.data.counts,
                "precision": self.training.precision.name,
                # Chosen by looking at the test set: never a result to report, only a diagnostic.
                "best_epoch_on_test_set": self.best,
                "seconds_this_session": round(time.perf_counter() - self.started, 1),
                "loop_wall_s": round(self.wall_seconds(), 1),
                "train_images_per_s": round(images / self.training_seconds, 1) if self.training_seconds else None,
            }
            write_json(self.run.final, final)
        return self.processes.broadcast(final)


def open_session(config: Config, run: RunDir, processes: Processes, *,
                 say: Callable[[str], None] | None = None) -> Session | dict:
    """The session that trains `run`, or final.json's content when the run is already complete.

    `say` (if given) receives one line naming the precision and where it came from.
    """
    status = run.status()
    processes.check_same([(NEW, RESUME, FINISHED).index(status)], "what --out holds")
    if status == FINISHED:   # the same command again: the result stands, nothing is written
        check_same_config(run, config)
        if say is not None:
            say(f"{run.root} is a complete run ({run.final}); nothing to do")
        return json.loads(run.final.read_text())
    requested = config.train.precision
    if status == RESUME:
        config = check_same_config(run, config)   # "auto" keeps the precision the run was created with
    config = with_precision(config, processes.broadcast(
        resolve_auto(config.train.precision, processes.device, config.model.name)))
    _refuse_what_processes_cannot_share(config, processes)
    training = build_training(config, processes)
    session = Session(run, processes, training, EpochTotals(processes.device))
    if status == RESUME:
        _resume(session)
    elif processes.is_main:
        run.create()
        write_json(run.config, config.to_dict())
        write_json(run.env, {**environment(processes.device), "processes": processes.world_size,
                             "precision": training.precision.name})
        write_json(run.data, training.data.summary)
        run.metrics.unlink(missing_ok=True)
    if say is not None:
        how = ("kept from the run's creation" if status == RESUME and requested == "auto" else
               "train.precision=auto on this device" if requested == "auto" else "train.precision")
        say(f"precision {training.precision.name} ({how})")
    return session


def _resume(session: Session) -> None:
    run, processes = session.run, session.processes
    if processes.is_main:
        _warn_of_other_versions(run)
    state = load_checkpoint(run.checkpoint, map_location=processes.device)
    restore_training(state, session.training, run, processes)
    saved_totals = state["epoch_totals"]
    if saved_totals.shape != session.totals.sums.shape and saved_totals.any():
        raise UserError(f"{run.checkpoint} was saved in the middle of an epoch by an older tailsam, which summed "
                        "the epoch's loss differently; resume it with that version, or start again in another --out")
    if processes.is_main and saved_totals.shape == session.totals.sums.shape:   # summed over all processes:
        session.totals.sums.copy_(saved_totals)                                    # count them once
    session.best, session.first_loss = state["best"], state.get("first_loss")
    session.earlier_seconds = state.get("wall_s", 0.0)
    epoch = session.training.method.batches.epoch
    agreed(processes, lambda: trim_metrics(run, epoch, session.config))


def _warn_of_other_versions(run: RunDir) -> None:
    """A warning when torch or torchvision differ from the versions env.json recorded at the run's creation:
    their kernels and augmentations (PaCo's views are torchvision's) may differ, so the resumed run need not
    equal an uninterrupted one. Not an error: finishing the run may still be what the user wants."""
    if not run.env.is_file():
        return
    created = json.loads(run.env.read_text())
    now = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    changed = [f"{name} {created[name]} -> {version}" for name, version in now.items()
               if created.get(name) not in (None, version)]
    if changed:
        warnings.warn(TailsamWarning(f"{run.root} was created with other versions ({', '.join(changed)}): the "
                                     "resumed run may not equal an uninterrupted one; resume with the run's "
                                     "versions (env.json) for an exact continuation"), stacklevel=2)


def _refuse_what_processes_cannot_share(config: Config, processes: Processes) -> None:
    """Settings that a data-parallel run cannot honour, refused before any work."""
    if not processes.distributed:
        return
    if not METHODS.get(config.method.name).info.data_parallel:   # e.g. GLMC: heads without an ascent gradient
        raise UserError(f"method {config.method.name} runs on one process for now; start it without torchrun")
    if config.hessian.every:
        raise UserError("hessian.every is not supported under torchrun; train with hessian.every=0 and run "
                        "`tailsam hessian RUN` on the finished run")
    if config.sam.perturbation == "local" and config.train.precision == "fp16":
        raise UserError("sam.perturbation=local with train.precision=fp16 would let processes skip different "
                        "steps on overflow; use bf16 or fp32")


def agreed(processes: Processes, action: Callable[[], object]):
    """Run `action` on rank 0; its UserError, if any, is raised on every process with the same line."""
    result, refusal = None, None
    if processes.is_main:
        try:
            result = action()
        except UserError as err:
            refusal = str(err)
    refusal = processes.broadcast(refusal)
    if refusal is not None:
        raise UserError(refusal)
    return result


@contextmanager
def owned(run: RunDir, processes: Processes) -> Iterator[None]:
    """Hold the run directory's lock (rank 0) while the block runs; every process refuses with the same line."""
    created = not run.root.exists()

    def take():
        run.status()   # a folder that is not a run is refused before the lock file is put into it
        return run.lock()

    lock = agreed(processes, take)
    try:
        yield
    finally:
        if lock is not None:
            if created and [p.name for p in run.root.iterdir()] == [run.lock_file.name]:
                run.lock_file.unlink()   # refused before writing anything: leave no folder behind
                run.root.rmdir()
            lock.close()
