"""Resuming a run: the same config as before, the training state back from its checkpoint, the log trimmed.

Only the data's location, the device, logging and compilation may change
between the sessions of one run (`RESUME_MAY_CHANGE`); anything else would
silently mix two experiments, so it is refused with the first differences.
"""

from __future__ import annotations

import torch

from tailsam.config import Config, apply_overrides, load_config
from tailsam.errors import UserError
from tailsam.run.build import Training
from tailsam.run.directory import RunDir
from tailsam.run.processes import Processes
from tailsam.run.restore import load_model_state

# What a checkpoint must hold to be resumed.
TRAINING_STATE = ("model", "optimizer", "loader", "epoch_totals", "rng", "best")

RESUME_MAY_CHANGE = (("data", "root"), ("data", "download"), ("train", "device"), ("train", "tensorboard"),
                     ("train", "compile"))


def check_same_config(run: RunDir, config: Config) -> Config:
    """The config to resume `run` with: `config`, with train.precision=auto taking the precision the run has.

    Resuming under other settings would silently mix two experiments: refuse, naming the first difference.
    """
    saved = load_config(run.config).to_dict()
    if config.train.precision == "auto":
        config = with_precision(config, saved["train"]["precision"])
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


def with_precision(config: Config, name: str) -> Config:
    return apply_overrides(config, [f"train.precision={name}"])


def restore_training(state: dict, training: Training, run: RunDir, processes: Processes) -> None:
    """Put the checkpoint's training state back into `training` (every process reads the same checkpoint)."""
    missing = [key for key in TRAINING_STATE if key not in state]
    if missing:
        raise UserError(f"{run.checkpoint}: not a training checkpoint (no {', '.join(missing)}); it cannot be "
                        "resumed: start the run again in another --out")
    if state.get("world_size", 1) != processes.world_size:
        raise UserError(f"{run.checkpoint} was written by {state.get('world_size', 1)} process(es), this run "
                        f"has {processes.world_size}; resume with the same number (it sets the global batch)")
    load_model_state(training.model, state["model"], run.checkpoint)
    training.optimizer.load_state_dict(state["optimizer"])
    training.method.batches.load_state_dict(state["loader"])
    training.method.load_state_dict(state.get("method", {}))
    torch.set_rng_state(state["rng"])
    if training.scaler is not None:
        training.scaler.load_state_dict(state["scaler"])
    batches = training.method.batches
    processes.check_same([batches.epoch, batches.position], "the checkpoint")


def trim_metrics(run: RunDir, epoch: int, config: Config) -> None:
    """Keep metrics.jsonl through `epoch`, the checkpoint's: the lines written after it are redone."""
    evaluated = epoch >= min(config.train.eval_every, config.train.epochs)
    if evaluated and not run.metrics.is_file():
        raise UserError(f"{run.metrics} is missing: the log of the epochs before the checkpoint; restore it from "
                        "a copy, or start the run again in another --out")
    run.keep_metrics_through(epoch)


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
