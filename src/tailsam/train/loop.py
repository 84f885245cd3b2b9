"""The training loop of one run, top to bottom.

`train(config, out)` opens the run directory `out` (tailsam.run.session: a
new run, a resumed one, or a finished one that is left alone), then for each
epoch sets the schedules, lets the method train on its batches, and at the
epoch's end evaluates, logs and checkpoints. Which method runs (plain or GLMC,
SAM or not) is the method's business (tailsam.methods); inside an epoch
nothing waits for the host: losses and accuracy accumulate on the device and
are read once per epoch, where a non-finite loss stops the run before it can
overwrite the last good checkpoint.

Launched by torchrun, every process runs this loop on its share of each
global batch; rank 0 alone writes the run directory.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from typing import Callable

from tailsam.config import Config
from tailsam.errors import TailsamWarning
from tailsam.eval import evaluate
from tailsam.optim import apply_schedules
from tailsam.run.directory import RunDir
from tailsam.run.processes import processes_from_environment
from tailsam.run.session import Session, open_session, owned
from tailsam.run.spectra import training_spectra
from tailsam.train.distributed import lost_contact, process_device, process_group
from tailsam.train.logs import EpochProgress, TensorBoardLog
from tailsam.train.signals import StopRequest, stop_on_signals


class RunInterrupted(Exception):
    """SIGINT/SIGTERM: the run saved a checkpoint and stopped; the same command resumes it."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class TrainingDiverged(Exception):
    """The training loss became NaN or inf; the last good checkpoint is left as it was."""


# An epoch's mean training loss this many times the run's first loss is reported as a warning.
LOSS_GROWTH = 1000

# Data-parallel processes agree on a stop signal every this many steps (one tiny all-reduce and a
# host synchronisation each time): a stop needs every process at the same step.
STOP_CHECK_STEPS = 20


def train(config: Config, out, *, verbose: bool = True, on_step: Callable[[int, int], None] | None = None,
          notes: list[str] = ()) -> dict:
    """Train `config` into the run directory `out` (resuming it if it holds a checkpoint); returns final.json.

    `on_step(epoch, step)` is called after every update (progress hooks, tests).
    `notes` are printed with the run's precision, once the run is built (when verbose).
    Under torchrun (WORLD_SIZE > 1 in the environment) this process joins the
    run's process group; only rank 0 writes files and prints.
    """
    processes = processes_from_environment()
    processes = processes.on(process_device(config.train.device, processes))
    run = RunDir(out)
    verbose = verbose and processes.is_main
    with process_group(processes, processes.device), owned(run, processes):
        try:
            opened = open_session(config, run, processes, say=_say(list(notes)) if verbose else None)
            return opened if isinstance(opened, dict) else _train(opened, verbose=verbose, on_step=on_step)
        except RuntimeError as err:
            failure = lost_contact(err, processes, run.checkpoint)
            if failure is None:
                raise
            raise failure from None


def _train(session: Session, *, verbose: bool, on_step: Callable[[int, int], None] | None) -> dict:
    t, processes, epochs = session.training, session.processes, session.config.train.epochs
    session.started = time.perf_counter()   # the loop's wall time: start-up excluded
    batches = t.method.batches
    progress = EpochProgress(epochs, len(batches), enabled=verbose)
    tensorboard = TensorBoardLog(session.run.root, session.config.train.tensorboard and processes.is_main)
    # torchrun passes a Ctrl-C on to its processes, which have had it already: a repeat must not
    # cut short the checkpoint it asked for (torchrun kills them if they take too long).
    with stop_on_signals(repeat_interrupts=not processes.distributed) as stop:
        while (epoch := batches.epoch + 1) <= epochs:
            values = {**apply_schedules(t.optimizer, epoch, lr=t.lr_schedule, rho=t.rho_schedule),
                      **t.method.start_epoch(epoch)}
            progress.start_epoch(epoch, batches.position)
            epoch_start = time.perf_counter()
            for batch in batches:
                out = t.method.step(batch)
                session.totals.add(out)
                session.trained_images += len(out.labels)
                if session.first_loss is None:
                    session.first_loss = out.loss.item()   # once per run: the only step that waits for the device
                progress.step()
                if on_step is not None:
                    on_step(epoch, batches.position - 1)
                if batches.position < len(batches) and _stop_now(stop, session):
                    session.save()
                    raise RunInterrupted(f"stopped by signal {stop.signum} in epoch {epoch} after step "
                                         f"{batches.position}; saved {session.run.checkpoint}; run the same "
                                         "command to resume", stop.signum)
            session.training_seconds += time.perf_counter() - epoch_start
            record = {"epoch": epoch, **values, **_training_loss(session, epoch)}
            summary = _end_of_epoch(session, record, tensorboard)
            session.save()
            progress.end_epoch(f"{summary}  ({time.perf_counter() - epoch_start:.1f}s)")
            if epoch < epochs and processes.any(stop.requested):
                raise RunInterrupted(f"stopped by signal {stop.signum} after epoch {epoch}; saved "
                                     f"{session.run.checkpoint}; run the same command to resume", stop.signum)
    tensorboard.close()
    return session.finish()


def _stop_now(stop: StopRequest, session: Session) -> bool:
    """A stop signal, agreed by all processes (checked every STOP_CHECK_STEPS steps when data-parallel)."""
    processes = session.processes
    if processes.distributed and session.training.method.batches.position % STOP_CHECK_STEPS:
        return False
    return processes.any(stop.requested)


def _training_loss(session: Session, epoch: int) -> dict:
    """The epoch's training loss and accuracy; TrainingDiverged if the loss is not finite."""
    loss, accuracy, _ = session.totals.read(session.processes)
    if not math.isfinite(loss):
        checkpoint = session.run.checkpoint
        kept = (f"{checkpoint} still holds the last state saved before it" if checkpoint.is_file()
                else "no checkpoint was saved before it")
        raise TrainingDiverged(f"training loss is {loss} in epoch {epoch}; stopped without saving, so {kept}; "
                               "lower optim.lr or sam.rho"
                               + (", or use train.precision=fp32" if session.training.precision.dtype else ""))
    first = session.first_loss
    # Only for a positive first loss (GLMC's consistency term can make a loss negative).
    if first is not None and first > 0 and loss > LOSS_GROWTH * first and session.processes.is_main:
        warnings.warn(TailsamWarning(
            f"epoch {epoch}: training loss {loss:.4g} is more than {LOSS_GROWTH}x the first step's {first:.4g}: "
            "the run is not learning; lower optim.lr or sam.rho"), stacklevel=2)
    return {"train_loss": loss, "train_acc": accuracy}


def _end_of_epoch(session: Session, record: dict, tensorboard: TensorBoardLog) -> str:
    """Evaluate (on evaluation epochs), append metrics.jsonl and TensorBoard; returns the progress line."""
    t, config, epoch = session.training, session.config, record["epoch"]
    summary = (f"epoch {epoch}/{config.train.epochs}  loss {record['train_loss']:.4f}  "
               f"train {record['train_acc']:.2f}%  lr {record['lr']:.3g}"
               + (f"  rho {record['rho']:.3g}" if "rho" in record else ""))
    if epoch % config.train.eval_every and epoch != config.train.epochs:
        return summary
    session.processes.copy_buffers_from_main(t.model)   # evaluate the model the checkpoint holds
    result = evaluate(t.model, t.data.test, t.data.counts, autocast_dtype=t.precision.dtype,
                      many_above=config.eval.many_threshold, few_below=config.eval.few_threshold,
                      across_processes=session.processes.distributed)
    record["test"] = result.to_dict(include_confusion=epoch == config.train.epochs)
    if session.best is None or result.top1 > session.best["top1"]:
        session.best = {"epoch": epoch, "top1": result.top1, "group_accuracy": result.group_accuracy}
    if config.hessian.every and epoch % config.hessian.every == 0:
        record["hessian"] = training_spectra(t.model, t.method.criterion, t.data.train, t.data.counts, config.hessian)
    if session.processes.is_main:
        session.run.append_metrics(record)
    tensorboard.scalars(epoch, {"train/loss": record["train_loss"], "train/acc": record["train_acc"],
                                "lr": record["lr"], "rho": record.get("rho"), "test/top1": result.top1,
                                **{f"test/{k}": v for k, v in result.group_accuracy.items()}})
    return f"{summary}  test {result.top1:.2f}%"


def _say(notes: list[str]) -> Callable[[str], None]:
    """Print each line the session reports on stderr; `notes` with the precision line of a run that trains."""
    def say(line: str) -> None:
        print("\n".join([*notes, line] if line.startswith("precision") else [line]), file=sys.stderr, flush=True)

    return say
