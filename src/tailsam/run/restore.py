"""Evaluate a finished (or running) run from its checkpoint, on the run's own test set."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import torch

from tailsam.config import Config, config_from_dict
from tailsam.errors import TailsamWarning, UserError
from tailsam.eval import EvalResult, evaluate
from tailsam.data import RunData, build_data
from tailsam.run.build import build_network
from tailsam.run.precision import resolve_auto, resolve_device, resolve_precision
from tailsam.run.directory import RunDir, load_checkpoint


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


@dataclasses.dataclass
class RestoredRun:
    """A trained model rebuilt from its checkpoint, with the run's config, data and raw checkpoint state."""

    path: Path
    state: dict
    config: Config
    data: RunData
    model: torch.nn.Module
    device: torch.device

    def non_finite_weights(self) -> list[str]:
        """Names of the checkpoint's tensors holding NaN or inf (a diverged run's last save)."""
        return [name for name, value in self.state["model"].items()
                if value.is_floating_point() and not torch.isfinite(value).all()]


def restore_run(run_or_checkpoint: str | Path, *, data_root: str | None = None, device: str = "auto") -> RestoredRun:
    """Rebuild the run's model and data from the checkpoint's config and load the weights.

    The rebuilt split must have the checkpoint's class counts, so an analysis never
    silently runs on other data than the model was trained on.
    """
    path = checkpoint_path(run_or_checkpoint)
    state = load_checkpoint(path)
    if "config" not in state or "model" not in state:
        raise UserError(f"{path}: holds no model or config; give a checkpoint written by tailsam train")
    if "class_counts" not in state:
        raise UserError(f"{path}: holds no class counts, which evaluation and analysis check the data against; "
                        "give a checkpoint written by tailsam train")
    config = config_from_dict(state["config"], where=f"{path} (config)")
    if data_root is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=data_root))
    torch_device = resolve_device(device)
    data = build_data(config, torch_device)
    counts = [int(n) for n in state["class_counts"]]
    if data.counts != counts:
        raise UserError(f"{path}: the data rebuilt from its config has class counts {data.counts}, the checkpoint "
                        f"{counts}; the dataset changed since training: point --data-root at the original files")
    model = build_network(config, len(counts), data.in_channels, torch_device)
    load_model_state(model, state["model"], path)
    return RestoredRun(path, state, config, data, model, torch_device)


def evaluate_checkpoint(run_or_checkpoint: str | Path, *, data_root: str | None = None,
                        device: str = "auto") -> tuple[EvalResult, Config, dict]:
    """Evaluate a run's model on its own test set.

    Returns the result, the run's config and the checkpoint's data description.
    """
    run = restore_run(run_or_checkpoint, data_root=data_root, device=device)
    # A run's config holds the precision it trained at ("auto" only in a config.json written by hand).
    precision = resolve_precision(resolve_auto(run.config.train.precision, run.device, run.config.model.name),
                                  run.device)
    bad = run.non_finite_weights()
    if bad:
        warnings.warn(TailsamWarning(f"{run.path}: {len(bad)} weight tensor(s) hold NaN or inf ({bad[0]}, ...); "
                                     "the accuracy below means nothing"), stacklevel=2)
    result = evaluate(run.model, run.data.test, run.data.counts, autocast_dtype=precision.dtype,
                      many_above=run.config.eval.many_threshold, few_below=run.config.eval.few_threshold)
    return result, run.config, run.data.summary
