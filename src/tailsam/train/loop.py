"""The training loop of one run, top to bottom.

`train(config, out)` builds the run from its config, resumes from
`out/checkpoints/last.pt` when it exists, and writes the run directory of
DESIGN.md. Inside an epoch nothing waits for the host: losses and accuracy
accumulate on the device and are read once per epoch, where a non-finite loss
stops the run before it can overwrite the last good checkpoint.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from tailsam.config import Config, load_config, save_config
from tailsam.errors import UserError
from tailsam.eval import evaluate
from tailsam.train.checkpoint_eval import load_model_state
from tailsam.train.build import build_criterion, build_data, build_network, build_optimizer, build_schedules
from tailsam.train.hessian_run import training_spectra
from tailsam.train.logs import EpochProgress, TensorBoardLog
from tailsam.train.precision import resolve_device, resolve_precision
from tailsam.train.signals import stop_on_signals
from tailsam.train.state import RunDir, environment, load_checkpoint, save_checkpoint, write_json
from tailsam.train.step import sam_step, sgd_step
from tailsam.optim import SAM, apply_schedules


class RunInterrupted(Exception):
    """SIGINT/SIGTERM: the run saved a checkpoint and stopped; the same command resumes it."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class TrainingDiverged(Exception):
    """The training loss became NaN or inf; the last good checkpoint is left as it was."""


def train(config: Config, out, *, verbose: bool = True,
          on_step: Callable[[int, int], None] | None = None) -> dict:
    """Train `config` into the run directory `out` (resuming it if it holds a checkpoint); returns final.json.

    `on_step(epoch, step)` is called after every update (progress hooks, tests).
    """
    run = RunDir(out)
    resuming = run.checkpoint.is_file()
    if resuming:
        _check_same_config(run, config)
    device = resolve_device(config.train.device)
    precision = resolve_precision(config.train.precision, device)

    torch.manual_seed(config.train.seed)
    data = build_data(config, device)
    model = build_network(config, len(data.counts), data.in_channels, device)
    criterion, drw = build_criterion(config, data.counts, device)
    optimizer = build_optimizer(config, model)
    lr_schedule, rho_schedule = build_schedules(config)
    scaler = precision.grad_scaler()
    totals = torch.zeros(3, dtype=torch.float64, device=device)   # loss sum, correct, images of this epoch
    best: dict | None = None

    if resuming:
        state = load_checkpoint(run.checkpoint, map_location=device)
        load_model_state(model, state["model"], run.checkpoint)
        optimizer.load_state_dict(state["optimizer"])
        data.train.load_state_dict(state["loader"])
        totals.copy_(state["epoch_totals"])
        torch.set_rng_state(state["rng"])
        if scaler is not None:
            scaler.load_state_dict(state["scaler"])
        best = state["best"]
        run.keep_metrics_through(data.train.epoch)   # lines written after that checkpoint are redone
    else:
        run.create()
        save_config(config, run.config)
        write_json(run.env, environment(device))
        write_json(run.data, data.summary)
        run.metrics.unlink(missing_ok=True)

    def checkpoint() -> None:
        save_checkpoint(run.checkpoint, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "loader": data.train.state_dict(), "epoch_totals": totals.cpu(), "rng": torch.get_rng_state(),
            "scaler": scaler.state_dict() if scaler is not None else None, "best": best,
            "config": config.to_dict(), "class_counts": data.counts, "data": data.summary,
        })

    epochs = config.train.epochs
    progress = EpochProgress(epochs, len(data.train), enabled=verbose)
    tensorboard = TensorBoardLog(run.root, config.train.tensorboard)
    started = time.perf_counter()
    trained_images, training_seconds = 0, 0.0   # this session, evaluation excluded
    with stop_on_signals() as stop:
        while (epoch := data.train.epoch + 1) <= epochs:
            values = apply_schedules(optimizer, epoch, lr=lr_schedule, rho=rho_schedule)
            if drw is not None:
                criterion.set_weight(drw.weight_at(epoch - 1))
            model.train()
            progress.start_epoch(epoch, data.train.position)
            epoch_start = time.perf_counter()
            for images, labels in data.train:
                if isinstance(optimizer, SAM):
                    loss, logits = sam_step(model, criterion, optimizer, images, labels,
                                            autocast=precision.autocast, freeze_bn=config.sam.freeze_bn, scaler=scaler)
                else:
                    loss, logits = sgd_step(model, criterion, optimizer, images, labels,
                                            autocast=precision.autocast, scaler=scaler)
                # Scalars from the host ride along as kernel arguments: no copy, no synchronisation.
                totals[0] += loss * len(labels)
                totals[1] += (logits.argmax(1) == labels).sum()
                totals[2] += len(labels)
                trained_images += len(labels)
                progress.step()
                if on_step is not None:
                    on_step(epoch, data.train.position - 1)
                if stop.requested and data.train.position < len(data.train):
                    checkpoint()
                    raise RunInterrupted(f"stopped by signal {stop.signum} in epoch {epoch} after step "
                                         f"{data.train.position}; saved {run.checkpoint}; run the same "
                                         "command to resume", stop.signum)

            loss_sum, correct, seen = totals.tolist()   # the epoch's one host synchronisation
            totals.zero_()
            training_seconds += time.perf_counter() - epoch_start
            if not math.isfinite(loss_sum):
                raise TrainingDiverged(
                    f"training loss is {loss_sum / seen} in epoch {epoch}; stopped without saving, so "
                    f"{run.checkpoint} still holds the last good epoch; lower optim.lr or sam.rho"
                    + (", or use train.precision=fp32" if precision.dtype is not None else ""))
            record = {"epoch": epoch, **values, "drw": drw is not None and criterion.weight is not None,
                      "train_loss": loss_sum / seen, "train_acc": 100.0 * correct / seen}
            summary = (f"epoch {epoch}/{epochs}  loss {record['train_loss']:.4f}  train {record['train_acc']:.2f}%  "
                       f"lr {values['lr']:.3g}" + (f"  rho {values['rho']:.3g}" if "rho" in values else ""))
            if epoch % config.train.eval_every == 0 or epoch == epochs:
                result = evaluate(model, data.test, data.counts, autocast_dtype=precision.dtype,
                                  many_above=config.eval.many_threshold, few_below=config.eval.few_threshold)
                record.update(test=result.to_dict(include_confusion=epoch == epochs))
                if best is None or result.top1 > best["top1"]:
                    best = {"epoch": epoch, "top1": result.top1, "group_accuracy": result.group_accuracy}
                summary += f"  test {result.top1:.2f}%"
                if config.hessian.every and epoch % config.hessian.every == 0:
                    record["hessian"] = training_spectra(model, criterion, data.train, data.counts, config.hessian)
                run.append_metrics(record)
                tensorboard.scalars(epoch, {"train/loss": record["train_loss"], "train/acc": record["train_acc"],
                                            "lr": values["lr"], "rho": values.get("rho"), "test/top1": result.top1,
                                            **{f"test/{k}": v for k, v in result.group_accuracy.items()}})
            checkpoint()
            progress.end_epoch(f"{summary}  ({time.perf_counter() - epoch_start:.1f}s)")
            if stop.requested and epoch < epochs:
                raise RunInterrupted(f"stopped by signal {stop.signum} after epoch {epoch}; saved {run.checkpoint}; "
                                     "run the same command to resume", stop.signum)
    tensorboard.close()

    final_record = run.read_metrics()[-1]
    final = {
        "epoch": final_record["epoch"], "top1": final_record["test"]["top1"],
        "group_accuracy": final_record["test"]["group_accuracy"], "per_class": final_record["test"]["per_class"],
        "train_counts": data.counts,
        # Chosen by looking at the test set: never a result to report, only a diagnostic.
        "best_epoch_on_test_set": best,
        "seconds_this_session": round(time.perf_counter() - started, 1),
        "train_images_per_s": round(trained_images / training_seconds, 1) if training_seconds else None,
    }
    write_json(run.final, final)
    return final


# Where the data lives, whether to download it, the device and logging may change between
# sessions of one run; nothing else may.
RESUME_MAY_CHANGE = (("data", "root"), ("data", "download"), ("train", "device"), ("train", "tensorboard"))


def _check_same_config(run: RunDir, config: Config) -> None:
    """Resuming under other settings would silently mix two experiments: refuse, naming the first difference."""
    saved = load_config(run.config).to_dict()
    wanted = config.to_dict()
    for section, key in RESUME_MAY_CHANGE:
        saved[section].pop(key)
        wanted[section].pop(key)
    if saved != wanted:
        key = _first_difference(saved, wanted)
        raise UserError(f"{run.root} holds a run with {key} different from this command's; "
                        "resume with the same recipe and overrides, or choose another --out")


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
                return _first_difference(a[key], b[key], f"{prefix}{key}.")
            return f"{prefix}{key} ({a.get(key)!r} there, {b.get(key)!r} here)"
    return "nothing"
