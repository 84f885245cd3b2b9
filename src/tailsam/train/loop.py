"""The training loop of one run, top to bottom.

`train(config, out)` builds the run from its config, resumes from
`out/checkpoints/last.pt` when it exists, and writes the run directory of
DESIGN.md. Inside an epoch nothing waits for the host: losses and accuracy
accumulate on the device and are read once per epoch, where a non-finite loss
stops the run before it can overwrite the last good checkpoint.

Launched by torchrun, every process runs this loop on its share of each
global batch (train/distributed.py); rank 0 alone writes the run directory.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.distributed as dist

from tailsam.config import Config, apply_overrides, load_config
from tailsam.errors import ConfigError, TailsamWarning, UserError
from tailsam.eval import evaluate
from tailsam.optim import SAM, apply_schedules
from tailsam.data import build_data
from tailsam.run.build import build_criterion, build_network, build_optimizer, build_schedules
from tailsam.run.restore import load_model_state
from tailsam.train.distributed import (DistributedFailure, GlobalBatchLoss, Processes, any_process,
                                       broadcast_from_main, check_same_everywhere, copy_buffers_from_main,
                                       process_device, process_group, processes_from_environment,
                                       sum_over_processes, wrap_model)
from tailsam.run.spectra import training_spectra
from tailsam.train.logs import EpochProgress, TensorBoardLog
from tailsam.run.precision import resolve_auto, resolve_precision
from tailsam.train.signals import stop_on_signals
from tailsam.run.directory import (FINISHED, NEW, RESUME, RunDir, environment, load_checkpoint, save_checkpoint,
                                 write_json)
from tailsam.train.step import sam_step, sgd_step


class RunInterrupted(Exception):
    """SIGINT/SIGTERM: the run saved a checkpoint and stopped; the same command resumes it."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class TrainingDiverged(Exception):
    """The training loss became NaN or inf; the last good checkpoint is left as it was."""


# What a checkpoint must hold to be resumed.
TRAINING_STATE = ("model", "optimizer", "loader", "epoch_totals", "rng", "best")
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
    device = process_device(config.train.device, processes)
    run = RunDir(out)
    with process_group(processes, device), _owned(run, processes):
        try:
            return _train(config, run, processes, device, verbose=verbose and processes.is_main, on_step=on_step,
                          notes=notes)
        except RuntimeError as err:
            if not (processes.distributed and _lost_contact(err)):
                raise
            # "[.../pair.cc:561] Connection closed by peer [127.0.0.1]:41693. This is typically ..." -> its core
            reason = re.sub(r"^\[[^\]]*\]\s*", "", str(err).strip().splitlines()[0]).split(". ")[0][:200]
            raise DistributedFailure(
                f"process {processes.rank} of {processes.world_size} lost contact with the others ({reason}); "
                f"{RunDir(out).checkpoint} holds the last saved state: run the same command to resume") from None


@contextmanager
def _owned(run: RunDir, processes: Processes) -> Iterator[None]:
    """Hold the run directory's lock (rank 0) while the block runs; every process refuses with the same line."""
    lock, refusal = None, None
    created = not run.root.exists()
    if processes.is_main:
        try:
            run.status()   # a folder that is not a run is refused before the lock file is put into it
            lock = run.lock()
        except UserError as err:
            refusal = str(err)
    refusal = broadcast_from_main(refusal, processes)
    if refusal is not None:
        raise UserError(refusal)
    try:
        yield
    finally:
        if lock is not None:
            if created and [p.name for p in run.root.iterdir()] == [run.lock_file.name]:
                run.lock_file.unlink()   # refused before writing anything: leave no folder behind
                run.root.rmdir()
            lock.close()


def _lost_contact(err: RuntimeError) -> bool:
    """A collective failed because another process is gone (gloo and NCCL raise plain RuntimeErrors too)."""
    text = str(err)
    return isinstance(err, dist.DistError) or any(mark in text for mark in ("gloo", "NCCL", "Connection", "c10d"))


def _train(config: Config, run: RunDir, processes: Processes, device: torch.device, *, verbose: bool,
           on_step: Callable[[int, int], None] | None, notes: list[str]) -> dict:
    main = processes.is_main
    status = run.status()
    check_same_everywhere([(NEW, RESUME, FINISHED).index(status)], processes, device, "what --out holds")
    if status == FINISHED:   # the same command again: the result stands, nothing is written
        check_same_config(run, config)
        if verbose:
            print(f"{run.root} is a complete run ({run.final}); nothing to do", file=sys.stderr, flush=True)
        return json.loads(run.final.read_text())
    resuming = status == RESUME
    # "auto" becomes a precision once, when the run is created; a resumed run keeps the one it has.
    requested = config.train.precision
    if resuming:
        config = check_same_config(run, config)
    config = _with_precision(config, broadcast_from_main(
        resolve_auto(config.train.precision, device, config.model.name), processes))
    precision = resolve_precision(config.train.precision, device)
    if config.train.compile != "off" and device.type != "cuda":
        raise ConfigError("train.compile is for CUDA devices: on this CPU inductor compiled slower than eager and "
                          "gave a SAM-step gradient 1.5% off eager (tests/test_compile.py); use train.compile=off")
    if processes.distributed:
        _check_data_parallel(config)

    torch.manual_seed(config.train.seed)
    data = build_data(config, device, rank=processes.rank, world_size=processes.world_size)
    model = build_network(config, len(data.counts), data.in_channels, device)
    # What the update steps run; checkpoints and evaluation use `model` itself (eager, plain state_dict keys).
    net = wrap_model(model, processes, device, sync_bn=config.train.sync_bn)
    if config.train.compile != "off":
        net = torch.compile(net, mode=None if config.train.compile == "default" else config.train.compile)
    criterion, drw = build_criterion(config, data.counts, device)
    loss_fn = GlobalBatchLoss(criterion, processes.world_size) if processes.distributed else criterion
    optimizer = build_optimizer(config, model)
    lr_schedule, rho_schedule = build_schedules(config)
    scaler = precision.grad_scaler()
    totals = torch.zeros(3, dtype=torch.float64, device=device)   # loss sum, correct, images of this epoch
    best: dict | None = None
    earlier_sessions_s = 0.0   # wall time of the loop in earlier sessions, up to their last checkpoint
    first_loss: float | None = None   # the run's first training loss: a loss 1000x above it is reported

    if resuming:
        state = load_checkpoint(run.checkpoint, map_location=device)
        missing = [key for key in TRAINING_STATE if key not in state]
        if missing:
            raise UserError(f"{run.checkpoint}: not a training checkpoint (no {', '.join(missing)}); it cannot be "
                            "resumed: start the run again in another --out")
        if state.get("world_size", 1) != processes.world_size:
            raise UserError(f"{run.checkpoint} was written by {state.get('world_size', 1)} process(es), this run "
                            f"has {processes.world_size}; resume with the same number (it sets the global batch)")
        load_model_state(model, state["model"], run.checkpoint)
        optimizer.load_state_dict(state["optimizer"])
        data.train.load_state_dict(state["loader"])
        if main:   # the saved totals are the sum over all processes: count them once
            totals.copy_(state["epoch_totals"])
        torch.set_rng_state(state["rng"])
        if scaler is not None:
            scaler.load_state_dict(state["scaler"])
        best = state["best"]
        earlier_sessions_s = state.get("wall_s", 0.0)
        first_loss = state.get("first_loss")
        check_same_everywhere([data.train.epoch, data.train.position], processes, device, "the checkpoint")
        refusal = None
        if main:   # every process stops with rank 0's one line, or none does
            try:
                _trim_metrics(run, data.train.epoch, config)
            except UserError as err:
                refusal = str(err)
        refusal = broadcast_from_main(refusal, processes)
        if refusal is not None:
            raise UserError(refusal)
    elif main:
        run.create()
        write_json(run.config, config.to_dict())
        write_json(run.env, {**environment(device), "processes": processes.world_size, "precision": precision.name})
        write_json(run.data, data.summary)
        run.metrics.unlink(missing_ok=True)

    def checkpoint() -> None:
        epoch_totals = sum_over_processes(totals, processes)   # every process takes part
        if main:
            save_checkpoint(run.checkpoint, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "loader": data.train.state_dict(), "epoch_totals": epoch_totals.cpu(), "rng": torch.get_rng_state(),
                "scaler": scaler.state_dict() if scaler is not None else None, "best": best,
                "config": config.to_dict(), "class_counts": data.counts, "data": data.summary,
                "world_size": processes.world_size, "wall_s": earlier_sessions_s + time.perf_counter() - started,
                "first_loss": first_loss,
            })

    epochs = config.train.epochs
    progress = EpochProgress(epochs, len(data.train), enabled=verbose)
    if verbose:
        how = ("kept from the run's creation" if resuming and requested == "auto" else
               "train.precision=auto on this device" if requested == "auto" else "train.precision")
        print("\n".join([*notes, f"precision {precision.name} ({how})"]), file=sys.stderr, flush=True)
    tensorboard = TensorBoardLog(run.root, config.train.tensorboard and main)
    started = time.perf_counter()
    trained_images, training_seconds = 0, 0.0   # this session, evaluation excluded
    # torchrun passes a Ctrl-C on to its processes, which have had it already: a repeat must not
    # cut short the checkpoint it asked for (torchrun kills them if they take too long).
    with stop_on_signals(repeat_interrupts=not processes.distributed) as stop:
        while (epoch := data.train.epoch + 1) <= epochs:
            values = apply_schedules(optimizer, epoch, lr=lr_schedule, rho=rho_schedule)
            if drw is not None:
                criterion.set_weight(drw.weight_at(epoch - 1))
            net.train()
            progress.start_epoch(epoch, data.train.position)
            epoch_start = time.perf_counter()
            for images, labels in data.train:
                if isinstance(optimizer, SAM):
                    loss, logits = sam_step(net, loss_fn, optimizer, images, labels,
                                            autocast=precision.autocast, freeze_bn=config.sam.freeze_bn, scaler=scaler,
                                            local_perturbation=config.sam.perturbation == "local"
                                            and processes.distributed)
                else:
                    loss, logits = sgd_step(net, loss_fn, optimizer, images, labels,
                                            autocast=precision.autocast, scaler=scaler)
                # Scalars from the host ride along as kernel arguments: no copy, no synchronisation.
                # Data-parallel, each process adds 1/N of the global batch's loss sum.
                totals[0] += (loss * loss_fn.images / processes.world_size if processes.distributed
                              else loss * len(labels))
                totals[1] += (logits.argmax(1) == labels).sum()
                totals[2] += len(labels)
                trained_images += len(labels)
                if first_loss is None:
                    first_loss = loss.item()   # once per run: the only step that waits for the device
                progress.step()
                if on_step is not None:
                    on_step(epoch, data.train.position - 1)
                position = data.train.position
                if (position < len(data.train) and (not processes.distributed or position % STOP_CHECK_STEPS == 0)
                        and any_process(stop.requested, processes, device)):
                    checkpoint()
                    raise RunInterrupted(f"stopped by signal {stop.signum} in epoch {epoch} after step "
                                         f"{data.train.position}; saved {run.checkpoint}; run the same "
                                         "command to resume", stop.signum)

            loss_sum, correct, seen = sum_over_processes(totals, processes).tolist()   # the epoch's one host sync
            totals.zero_()
            training_seconds += time.perf_counter() - epoch_start
            if not math.isfinite(loss_sum):
                kept = (f"{run.checkpoint} still holds the last state saved before it" if run.checkpoint.is_file()
                        else "no checkpoint was saved before it")
                raise TrainingDiverged(
                    f"training loss is {loss_sum / seen} in epoch {epoch}; stopped without saving, so "
                    f"{kept}; lower optim.lr or sam.rho"
                    + (", or use train.precision=fp32" if precision.dtype is not None else ""))
            if first_loss and loss_sum / seen > LOSS_GROWTH * first_loss and main:
                warnings.warn(TailsamWarning(
                    f"epoch {epoch}: training loss {loss_sum / seen:.4g} is more than {LOSS_GROWTH}x the first "
                    f"step's {first_loss:.4g}: the run is not learning; lower optim.lr or sam.rho"), stacklevel=2)
            record = {"epoch": epoch, **values, "drw": drw is not None and criterion.weight is not None,
                      "train_loss": loss_sum / seen, "train_acc": 100.0 * correct / seen}
            summary = (f"epoch {epoch}/{epochs}  loss {record['train_loss']:.4f}  train {record['train_acc']:.2f}%  "
                       f"lr {values['lr']:.3g}" + (f"  rho {values['rho']:.3g}" if "rho" in values else ""))
            if epoch % config.train.eval_every == 0 or epoch == epochs:
                copy_buffers_from_main(model, processes)   # evaluate the model the checkpoint holds
                result = evaluate(model, data.test, data.counts, autocast_dtype=precision.dtype,
                                  many_above=config.eval.many_threshold, few_below=config.eval.few_threshold,
                                  across_processes=processes.distributed)
                record.update(test=result.to_dict(include_confusion=epoch == epochs))
                if best is None or result.top1 > best["top1"]:
                    best = {"epoch": epoch, "top1": result.top1, "group_accuracy": result.group_accuracy}
                summary += f"  test {result.top1:.2f}%"
                if config.hessian.every and epoch % config.hessian.every == 0:
                    record["hessian"] = training_spectra(model, criterion, data.train, data.counts, config.hessian)
                if main:
                    run.append_metrics(record)
                tensorboard.scalars(epoch, {"train/loss": record["train_loss"], "train/acc": record["train_acc"],
                                            "lr": values["lr"], "rho": values.get("rho"), "test/top1": result.top1,
                                            **{f"test/{k}": v for k, v in result.group_accuracy.items()}})
            checkpoint()
            progress.end_epoch(f"{summary}  ({time.perf_counter() - epoch_start:.1f}s)")
            if epoch < epochs and any_process(stop.requested, processes, device):
                raise RunInterrupted(f"stopped by signal {stop.signum} after epoch {epoch}; saved {run.checkpoint}; "
                                     "run the same command to resume", stop.signum)
    tensorboard.close()
    trained_images = int(sum_over_processes(torch.tensor([trained_images], device=device), processes).item())
    return broadcast_from_main(_write_final(run, data.counts, best, started, earlier_sessions_s, trained_images,
                                            training_seconds, precision.name) if main else None, processes)


def _write_final(run: RunDir, counts: list[int], best: dict | None, started: float, earlier_sessions_s: float,
                 trained_images: int, training_seconds: float, precision: str) -> dict:
    """final.json: the last epoch's test metrics, and the best epoch labelled as chosen on the test set."""
    final_record = run.read_metrics()[-1]
    final = {
        "epoch": final_record["epoch"], "top1": final_record["test"]["top1"],
        "group_accuracy": final_record["test"]["group_accuracy"], "per_class": final_record["test"]["per_class"],
        "train_counts": counts, "precision": precision,
        # Chosen by looking at the test set: never a result to report, only a diagnostic.
        "best_epoch_on_test_set": best,
        "seconds_this_session": round(time.perf_counter() - started, 1),
        # The training loop's wall time over every session up to its last save (start-up excluded).
        "loop_wall_s": round(earlier_sessions_s + time.perf_counter() - started, 1),
        "train_images_per_s": round(trained_images / training_seconds, 1) if training_seconds else None,
    }
    write_json(run.final, final)
    return final


def _check_data_parallel(config: Config) -> None:
    """Settings that a data-parallel run cannot honour, refused before any work."""
    if config.hessian.every:
        raise UserError("hessian.every is not supported under torchrun; train with hessian.every=0 and run "
                        "`tailsam hessian RUN` on the finished run")
    if config.sam.perturbation == "local" and config.train.precision == "fp16":
        raise UserError("sam.perturbation=local with train.precision=fp16 would let processes skip different "
                        "steps on overflow; use bf16 or fp32")


# Where the data lives, whether to download it, the device, logging and compilation may change
# between sessions of one run; nothing else may.
RESUME_MAY_CHANGE = (("data", "root"), ("data", "download"), ("train", "device"), ("train", "tensorboard"),
                     ("train", "compile"))


def check_same_config(run: RunDir, config: Config) -> Config:
    """The config to resume `run` with: `config`, with train.precision=auto taking the precision the run has.

    Resuming under other settings would silently mix two experiments: refuse, naming the first difference.
    """
    saved = load_config(run.config).to_dict()
    if config.train.precision == "auto":
        config = _with_precision(config, saved["train"]["precision"])
    wanted = config.to_dict()
    for section, key in RESUME_MAY_CHANGE:
        saved[section].pop(key)
        wanted[section].pop(key)
    if saved["hessian"]["every"] == wanted["hessian"]["every"] == 0:   # the analysis settings are never used
        saved.pop("hessian")
        wanted.pop("hessian")
    if saved != wanted:
        found = _differences(saved, wanted)
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise UserError(f"{run.root} holds a run with {shown} different from this command's; give the same "
                        f"recipe and overrides (or --config {run.config}), or choose another --out")
    return config


def _trim_metrics(run: RunDir, epoch: int, config: Config) -> None:
    """Keep metrics.jsonl through `epoch`, the checkpoint's: the lines written after it are redone."""
    evaluated = epoch >= min(config.train.eval_every, config.train.epochs)
    if evaluated and not run.metrics.is_file():
        raise UserError(f"{run.metrics} is missing: the log of the epochs before the checkpoint; restore it from "
                        "a copy, or start the run again in another --out")
    run.keep_metrics_through(epoch)


def _with_precision(config: Config, name: str) -> Config:
    return apply_overrides(config, [f"train.precision={name}"])


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Each dotted key whose value differs, with both values (a milestone that moved with train.epochs too)."""
    found = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
                found += _differences(a[key], b[key], f"{prefix}{key}.")
            else:
                found.append(f"{prefix}{key} ({a.get(key)!r} there, {b.get(key)!r} here)")
    return found
