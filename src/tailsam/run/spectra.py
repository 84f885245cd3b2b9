"""Per-class Hessian spectra of a run: rebuilt from its checkpoint, or of the model as it trains.

`tailsam.hessian` sits below the run layer (DESIGN.md); rebuilding a run needs
the run's builders, so this glue lives here. tailsam.report.spectra writes
the result (results.json, plots, the table).

What is analysed, for each class c: the Hessian of the mean loss over class
c's images of a split, model in eval mode. The train split is the run's
long-tailed training set, not augmented unless asked (`augment=True` applies
the training crop/flip once, with a fixed seed, as the paper's PyHessian
runs saw augmented images). The loss:
- "run" (default): the run's own loss (LDAM's margins and scale, VS/LA's
  adjustments, focal's gamma) with the class weights it trained with at the
  checkpoint's epoch (DRW's weights once they are on). On one class's images a
  class weight multiplies every term of the weighted mean and cancels, so per
  class the weights change nothing; only the loss's own form does. This is the
  surface the run descended, and where the saddle shows: on a 200-epoch
  LDAM+DRW CIFAR-10-LT model lambda_min/lambda_max was -0.03 (class 0), -0.11
  (class 4) and -1.22 (class 9) with it.
- "ce": plain cross-entropy on the model's logits (the paper's script's
  default). For a cosine ("normed") head these are the raw cosines in [-1, 1],
  without LDAM's scale s: a loss of 1.8 at 100% accuracy, and on the same model
  -0.12, -0.10, -0.075, no separation between head and tail.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tailsam.config import Config, HessianConfig
from tailsam.data import Augment, DeviceLoader, dataset_info
from tailsam.data.augment import draw_crop_flip, gather_crops, normalize, pad_images
from tailsam.errors import UserError
from tailsam.resources import available_memory
from tailsam.hessian import ClassSpectrum, analyze, spectrum_record, spread_classes
from tailsam.hessian.hvp import LossFn
from tailsam.hessian.per_class import Transform
from tailsam.methods import METHODS
from tailsam.run.build import build_criterion
from tailsam.run.restore import restore_run

SPLITS = ("train", "test")
LOSSES = ("ce", "run")
RESULTS_FILE = "results.json"   # written by tailsam.report.spectra


@dataclass(frozen=True)
class RunSpectra:
    """The per-class spectra of one checkpoint, with what was analysed and how."""

    checkpoint: Path
    recipe: str
    epoch: int                     # epochs completed at the checkpoint
    counts: list[int]              # training images per class
    spectra: list[ClassSpectrum]
    settings: dict                 # split, loss, augment, steps, runs, max_images, seed, method, device
    seconds: float

    def to_dict(self) -> dict:
        """The content of results.json: settings, then one record per class (see `spectrum_record`)."""
        return {
            "checkpoint": str(self.checkpoint), "recipe": self.recipe, "epoch": self.epoch,
            **self.settings, "train_counts": self.counts, "seconds": round(self.seconds, 2),
            "classes": [spectrum_record(s, self.counts[s.class_id]) for s in self.spectra],
        }


def check_results_folder(folder: str | Path, *, replace: bool) -> None:
    """Before an analysis: `folder` must be able to take its files without losing an earlier analysis."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} is a file; give a folder for results.json and the plots")
    earlier = folder / RESULTS_FILE
    if earlier.exists() and not replace:
        raise UserError(f"{earlier} holds an earlier analysis; give --out DIR for this one, or --force to replace it")
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    try:   # a probe where the files will go (or the folder that will hold them), removed at once
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as err:
        raise UserError(f"cannot write the results into {folder} ({err.strerror}); give --out DIR") from None


def hessian_dir(run_or_checkpoint: str | Path) -> Path:
    """Where results go by default: RUN/hessian for a run directory or a checkpoint inside one."""
    path = Path(run_or_checkpoint)
    if path.is_dir():
        return path / "hessian"
    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return run / "hessian"


def analyze_checkpoint(run_or_checkpoint: str | Path, *, classes: list[int] | None = None, split: str = "train",
                       loss: str = "run", steps: int = 100, runs: int = 1, max_images: int | None = None,
                       seed: int = 0, augment: bool = False, data_root: str | None = None,
                       device: str = "auto") -> RunSpectra:
    """Rebuild the run's model and data from a checkpoint and compute the spectra of `classes` (default: all).

    `split`: "train" (the run's long-tailed training images) or "test".
    `loss`: "ce" or "run" (see the module docstring). `augment`: apply the
    dataset's training augmentation once, drawn from `seed`. `max_images` and
    `seed` also pick at most that many images per class; `steps` and `runs`
    are Lanczos steps and independent starts.
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if loss not in LOSSES:
        raise UserError(f"unknown loss {loss!r}; choose ce (plain cross-entropy) or run (the run's own loss)")
    restored = restore_run(run_or_checkpoint, data_root=data_root, device=device)
    path, state, config, data, model = restored.path, restored.state, restored.config, restored.data, restored.model
    if not isinstance(data.train, DeviceLoader):
        raise UserError(f"{path}: the per-class Hessian needs a dataset held in memory (CIFAR, digits); "
                        f"{config.data.dataset} is read from image files, which this analysis does not support yet")
    torch_device, counts = restored.device, data.counts
    bad = restored.non_finite_weights()
    if bad:
        raise UserError(f"{path}: {len(bad)} weight tensor(s) hold NaN or inf ({bad[0]}, ...): there is no "
                        "curvature to measure; analyse a checkpoint from before the run diverged")
    _check_lanczos_memory(model, steps, torch_device)
    epoch = int(state["loader"]["epoch"])
    # Mid-epoch checkpoints (position > 0) trained part of epoch + 1 with that epoch's weights.
    trained_in = epoch + 1 if state["loader"]["position"] > 0 else epoch
    loader = data.train if split == "train" else data.test
    started = time.perf_counter()
    spectra = analyze(
        model, stored_images(loader), loader.labels, counts, classes=classes,
        loss_fn=_loss(config, loss, counts, torch_device, trained_in), steps=steps, runs=runs,
        max_images=max_images, seed=seed,
        transform=model_inputs(loader, dataset_info(config.data.dataset).augment if augment else None, seed),
        source=f"the {split} split of {path}",
    )
    settings = {"split": split, "loss": loss, "loss_function": _loss_function(config, loss), "augment": augment,
                "steps": steps, "runs": runs, "max_images": max_images, "seed": seed, "device": str(torch_device)}
    return RunSpectra(path, config.recipe, epoch, counts, spectra, settings, time.perf_counter() - started)


def training_spectra(model: nn.Module, criterion: nn.Module, loader: DeviceLoader, counts: list[int],
                     settings: HessianConfig) -> list[dict]:
    """The compact per-class records the training loop logs under "hessian" in metrics.jsonl.

    Uses the training split without augmentation, the same seeded images every
    time, and `criterion` as it stands this epoch for loss "run". It reads the
    model without changing it or drawing from the global random generator, so
    a resumed run stays bit-identical.
    """
    loss_fn = criterion if settings.loss == "run" else F.cross_entropy
    spectra = analyze(model, stored_images(loader), loader.labels, counts,
                      classes=spread_classes(counts, settings.classes), loss_fn=loss_fn, steps=settings.steps,
                      max_images=settings.max_images, transform=model_inputs(loader, None, 0),
                      source="the training split")
    return [spectrum_record(s, counts[s.class_id], detail=False) for s in spectra]


def stored_images(loader: DeviceLoader) -> torch.Tensor:
    """The loader's uint8 NHWC images without the zero border it stores for random crops (a view, no copy)."""
    pad = loader.augment.padding if loader.augment is not None else 0
    return loader.images[:, pad:pad + loader.height, pad:pad + loader.width]


def model_inputs(loader: DeviceLoader, augment: Augment | None, seed: int) -> Transform:
    """uint8 images -> the loader's normalised float inputs; with `augment`, one crop/flip per image from `seed`.

    The augmentation is drawn afresh from `seed` for each call (each class), so
    an analysis is reproducible whatever classes it covers.
    """
    def transform(images: torch.Tensor) -> torch.Tensor:
        if augment is not None:
            top, left, flip = (t.to(images.device)
                               for t in draw_crop_flip(len(images), augment, torch.Generator().manual_seed(seed)))
            images = gather_crops(pad_images(images, augment.padding), torch.arange(len(images), device=images.device),
                                  top, left, flip, loader.height, loader.width)
        return normalize(images, loader.mean, loader.std, channels_last=loader.channels_last)

    return transform


def _check_lanczos_memory(model: nn.Module, steps: int, device: torch.device) -> None:
    """Refuse, before any work, a Lanczos basis (steps x parameters) that cannot fit or cannot be full rank."""
    dim = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if steps > dim:
        raise UserError(f"--steps {steps} is more than the model's {dim} parameters; use at most {dim}")
    need, free = steps * dim * 4, available_memory(device)   # float32 basis
    if free is not None and need > 0.8 * free:
        raise UserError(f"{steps} Lanczos steps keep a {steps} x {dim} basis of {need / 2**30:.1f} GiB, more than "
                        f"the {free / 2**30:.1f} GiB free on {device}; lower --steps")


def _loss_function(config: Config, name: str) -> str:
    """What loss `name` means for this run, in words, for results.json and the table."""
    own = METHODS.get(config.method.name).info.trains_criterion
    if name == "ce" or not own:
        plain = "cross-entropy on the logits" + (" (unscaled cosines of the normed head)"
                                                  if config.model.head == "normed" else "")
        if not own:   # e.g. GLMC's mixed, multi-head loss has no per-image form to analyse
            return f"{plain} it evaluates with (method {config.method.name}'s own loss is not analysed)"
        return plain
    weights = {"none": "", "cb": ", class-balanced weights", "drw": ", DRW as at the checkpoint's epoch"}[
        config.loss.weighting]
    return f"the run's own: {config.loss.name}{weights}"


def _loss(config: Config, name: str, counts: list[int], device: torch.device, epoch: int) -> LossFn:
    if name == "ce" or not METHODS.get(config.method.name).info.trains_criterion:
        return F.cross_entropy
    criterion, drw = build_criterion(config, counts, device)
    if drw is not None:
        criterion.set_weight(drw.weight_at(epoch))
    return criterion
