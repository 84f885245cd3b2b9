"""Evaluate a finished (or running) run from its checkpoint, on the run's own test set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from tailsam.config import Config, config_from_dict
from tailsam.errors import UserError
from tailsam.eval import EvalResult, evaluate
from tailsam.train.build import build_data, build_network
from tailsam.train.precision import resolve_device, resolve_precision
from tailsam.train.state import RunDir, load_checkpoint


def checkpoint_path(run_or_checkpoint: str | Path) -> Path:
    """A run directory means its checkpoints/last.pt; a file is taken as the checkpoint itself."""
    path = Path(run_or_checkpoint)
    return RunDir(path).checkpoint if path.is_dir() else path


def load_model_state(model: torch.nn.Module, state: dict, path: Path) -> None:
    """Load weights, turning an architecture or class-count mismatch into one clear line."""
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise UserError(f"{path}: its weights do not fit this model ({first}); "
                        "it was written for another architecture or class count") from None


def evaluate_checkpoint(run_or_checkpoint: str | Path, *, data_root: str | None = None,
                        device: str = "auto") -> tuple[EvalResult, Config, dict]:
    """Rebuild the run's model and test set from the checkpoint's config and evaluate it.

    Returns the result, the run's config and the checkpoint's data description.
    """
    path = checkpoint_path(run_or_checkpoint)
    state = load_checkpoint(path)
    if "config" not in state or "model" not in state:
        raise UserError(f"{path}: holds no model or config; give a checkpoint written by tailsam train")
    config = config_from_dict(state["config"], where=f"{path} (config)")
    if data_root is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=data_root))
    config.train.device = device
    torch_device = resolve_device(device)
    data = build_data(config, torch_device)
    model = build_network(config, len(data.counts), data.in_channels, torch_device)
    load_model_state(model, state["model"], path)
    precision = resolve_precision(config.train.precision, torch_device)
    result = evaluate(model, data.test, data.counts, autocast_dtype=precision.dtype,
                      many_above=config.eval.many_threshold, few_below=config.eval.few_threshold)
    return result, config, data.summary
