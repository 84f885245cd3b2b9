"""Learning-rate and rho schedules as pure functions of (epoch, step).

Convention, everywhere in tailsam: ``epoch`` is 1-indexed, as in the paper
("lr = 0.1 * e / 5 for e <= 5"): the first epoch is 1 and a 200-epoch run ends
at epoch 200. ``step`` is the 0-indexed batch within that epoch. Per-epoch
schedules ignore ``step``; the cosine schedule uses it when built with
``steps_per_epoch > 1``.

A schedule is a small frozen dataclass, called as ``schedule(epoch, step=0)``.
Configs build them by name: ``build_lr_schedule("cosine", base_lr=0.2, epochs=90)``.
``apply_schedules`` writes the values into an optimizer's param groups.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from tailsam.errors import ConfigError
from tailsam.registry import Registry

@dataclass(frozen=True)
class ScheduleInfo:
    # The builder's arguments that are epochs (milestones, warm-up, length), which move with
    # train.epochs when a recipe is shortened or stretched (`scale_epochs`).
    epoch_args: tuple[str, ...]
    paper: str = ""


LR_SCHEDULES = Registry("lr schedule", ScheduleInfo)
RHO_SCHEDULES = Registry("rho schedule", ScheduleInfo)


class Schedule(Protocol):
    def __call__(self, epoch: int, step: int = 0) -> float: ...


@dataclass(frozen=True)
class StepDecayLR:
    """Linear warm-up, then ``base_lr * gamma ** k`` after k milestones; set once per epoch.

    Warm-up: ``base_lr * (f + (1 - f) * epoch / warmup_epochs)`` for ``epoch <= warmup_epochs``, with
    ``f = warmup_from`` (0: the LDAM-DRW ramp ``base_lr * epoch / warmup_epochs``; CC-SAM's starts from 1/3).
    A milestone m has passed when ``epoch > m`` (torch's MultiStepLR with its
    0-indexed epochs). Without milestones and warm-up this is a constant lr.
    """

    base_lr: float
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_epochs: int = 0
    warmup_from: float = 0.0

    def __post_init__(self) -> None:
        _require_positive("base_lr", self.base_lr)
        _require_positive("gamma", self.gamma)
        _require_count("warmup_epochs", self.warmup_epochs)
        if not 0 <= self.warmup_from <= 1:
            raise ConfigError(f"lr warm-up: warmup_from is a fraction of base_lr in [0, 1], got {self.warmup_from}")
        object.__setattr__(self, "milestones", _increasing_epochs("milestones", self.milestones))

    def __call__(self, epoch: int, step: int = 0) -> float:
        _check_epoch(epoch)
        if epoch <= self.warmup_epochs:
            return self.base_lr * (self.warmup_from + (1 - self.warmup_from) * epoch / self.warmup_epochs)
        passed = sum(epoch > milestone for milestone in self.milestones)
        return self.base_lr * self.gamma**passed


@dataclass(frozen=True)
class RampStepLR:
    """PaCo's CIFAR schedule: ``base_lr * epoch / ramp_epochs`` for ``epoch <= ramp_epochs + 1`` (the
    reference's ramp runs one epoch past the base: 1.1 x at epoch 11 of a 10-epoch ramp; a ramp of R
    epochs, e.g. shortened with train.epochs, peaks at (R + 1) / R x), then ``base_lr * gamma ** k``
    after k milestones (passed when ``epoch > m``)."""

    base_lr: float
    ramp_epochs: int = 10
    milestones: tuple[int, ...] = (321, 361)
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _require_positive("base_lr", self.base_lr)
        _require_positive("gamma", self.gamma)
        _require_count("ramp_epochs", self.ramp_epochs, minimum=1)
        object.__setattr__(self, "milestones", _increasing_epochs("milestones", self.milestones))

    def __call__(self, epoch: int, step: int = 0) -> float:
        _check_epoch(epoch)
        if epoch <= self.ramp_epochs + 1:
            return self.base_lr * epoch / self.ramp_epochs
        return self.base_lr * self.gamma ** sum(epoch > milestone for milestone in self.milestones)


@dataclass(frozen=True)
class TwoStageLR:
    """``first`` through epoch ``stage_two_after``, then ``first.base_lr * stage_two_factor``: a decoupled
    method's second stage (CC-SAM re-trains its classifier at a constant lr)."""

    first: StepDecayLR
    stage_two_after: int
    stage_two_factor: float

    def __post_init__(self) -> None:
        _require_count("stage_two_after", self.stage_two_after, minimum=1)
        _require_positive("stage_two_factor", self.stage_two_factor)

    def __call__(self, epoch: int, step: int = 0) -> float:
        if epoch > self.stage_two_after:
            return self.first.base_lr * self.stage_two_factor
        return self.first(epoch, step)


@dataclass(frozen=True)
class CosineLR:
    """Linear warm-up, then cosine decay from ``base_lr`` to ``min_lr``, per step.

    Steps are counted over the run: ``i = (epoch - 1) * steps_per_epoch + step``.
    Warm-up covers the first ``W = warmup_epochs * steps_per_epoch`` steps with
    ``base_lr * (i + 1) / W`` (it reaches ``base_lr`` on its last step); the
    remaining steps follow ``min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2``,
    ``p`` going from 0 to just below 1. ``steps_per_epoch=1`` gives a per-epoch
    cosine equal to torch's ``CosineAnnealingLR(T_max=epochs)``. ``stepped_first=True`` (per epoch, no
    warm-up) is the same scheduler stepped before each epoch rather than after, as ImbSAM's and SSE-SAM's
    code does: epoch e trains at the value of e + 1, and the last epoch at ``min_lr``.
    """

    base_lr: float
    epochs: int
    warmup_epochs: int = 0
    min_lr: float = 0.0
    steps_per_epoch: int = 1
    stepped_first: bool = False

    def __post_init__(self) -> None:
        _require_positive("base_lr", self.base_lr)
        _require_count("epochs", self.epochs, minimum=1)
        _require_count("warmup_epochs", self.warmup_epochs)
        _require_count("steps_per_epoch", self.steps_per_epoch, minimum=1)
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(
                f"cosine lr: warmup_epochs ({self.warmup_epochs}) must be below epochs ({self.epochs})"
            )
        if not (isinstance(self.min_lr, (int, float)) and 0 <= self.min_lr <= self.base_lr):
            raise ConfigError(
                f"cosine lr: min_lr must lie in [0, base_lr={self.base_lr}], got {self.min_lr!r}"
            )
        if self.stepped_first and (self.steps_per_epoch != 1 or self.warmup_epochs):
            raise ConfigError("cosine lr: stepped_first is a per-epoch schedule without warm-up "
                              "(steps_per_epoch=1, warmup_epochs=0)")

    def __call__(self, epoch: int, step: int = 0) -> float:
        _check_epoch(epoch, last=self.epochs)
        if not 0 <= step < self.steps_per_epoch:
            raise ValueError(f"step {step} is outside 0..{self.steps_per_epoch - 1} (steps_per_epoch)")
        i = (epoch - 1) * self.steps_per_epoch + step + self.stepped_first
        warmup_steps = self.warmup_epochs * self.steps_per_epoch
        if i < warmup_steps:
            return self.base_lr * (i + 1) / warmup_steps
        progress = (i - warmup_steps) / (self.epochs * self.steps_per_epoch - warmup_steps)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class ConstantRho:
    """The same rho every epoch."""

    rho: float

    def __post_init__(self) -> None:
        _require_rho("rho", self.rho)

    def __call__(self, epoch: int, step: int = 0) -> float:
        _check_epoch(epoch)
        return self.rho


@dataclass(frozen=True)
class StepRho:
    """Piecewise-constant rho: ``values[k]`` once k of the ``boundaries`` have passed.

    A boundary b has passed when ``epoch > b``, so ``boundaries`` are the last
    epochs of each range: values (0.05, 0.1, 0.5, 0.6) with boundaries
    (5, 160, 180) give 0.05 for epochs 1-5, 0.1 for 6-160, 0.5 for 161-180 and
    0.6 from 181 on.
    """

    values: tuple[float, ...]
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "boundaries", _increasing_epochs("boundaries", self.boundaries))
        for value in self.values:
            _require_rho("values", value)
        if len(self.values) != len(self.boundaries) + 1:
            raise ConfigError(
                f"step rho: {len(self.boundaries)} boundaries split the run into "
                f"{len(self.boundaries) + 1} ranges, but {len(self.values)} values were given"
            )

    def __call__(self, epoch: int, step: int = 0) -> float:
        _check_epoch(epoch)
        return self.values[sum(epoch > boundary for boundary in self.boundaries)]


@dataclass(frozen=True)
class LinearRho:
    """rho rising linearly from ``min_rho`` at epoch 1 to ``max_rho`` at epoch ``epochs``."""

    min_rho: float
    max_rho: float
    epochs: int

    def __post_init__(self) -> None:
        _require_rho("min_rho", self.min_rho)
        _require_rho("max_rho", self.max_rho)
        _require_count("epochs", self.epochs, minimum=1)
        if self.min_rho > self.max_rho:
            raise ConfigError(f"linear rho: min_rho ({self.min_rho}) is above max_rho ({self.max_rho})")

    def __call__(self, epoch: int, step: int = 0) -> float:
        _check_epoch(epoch, last=self.epochs)
        if self.epochs == 1:
            return self.min_rho
        return self.min_rho + (self.max_rho - self.min_rho) * (epoch - 1) / (self.epochs - 1)


@LR_SCHEDULES.register("paper_cifar", paper="Cao et al. 2019 (LDAM-DRW); Rangwani et al. 2022",
                        epoch_args=("warmup_epochs", "decay_epochs"))
def paper_cifar_lr(
    base_lr: float = 0.1,
    warmup_epochs: int = 5,
    decay_epochs: tuple[int, ...] = (160, 180),
    gamma: float = 0.01,
) -> StepDecayLR:
    """The CIFAR-LT schedule: warm-up over 5 epochs, then x0.01 after epoch 160 and again after 180."""
    return StepDecayLR(base_lr, milestones=tuple(decay_epochs), gamma=gamma, warmup_epochs=warmup_epochs)


@LR_SCHEDULES.register("step", epoch_args=("milestones", "warmup_epochs"))
def step_lr(
    base_lr: float, milestones: tuple[int, ...] = (), gamma: float = 0.1, warmup_epochs: int = 0
) -> StepDecayLR:
    """``base_lr`` times ``gamma`` after each milestone epoch, with optional linear warm-up."""
    return StepDecayLR(base_lr, milestones=tuple(milestones), gamma=gamma, warmup_epochs=warmup_epochs)


@LR_SCHEDULES.register("cc_sam", paper="Zhou et al. 2023, CC-SAM's CIFAR configs",
                        epoch_args=("warmup_epochs", "milestones", "stage_two_after"))
def cc_sam_lr(base_lr: float, warmup_epochs: int = 5, warmup_from: float = 1 / 3,
              milestones: tuple[int, ...] = (159, 179), gamma: float = 0.1, stage_two_after: int = 200,
              stage_two_factor: float = 0.1) -> TwoStageLR:
    """CC-SAM's two stages: a warm-up from base_lr / 3, x0.1 from epoch 160 and 180 (the reference steps its
    scheduler before each epoch, so its milestones 160 and 180 act one epoch early), then base_lr x 0.1 for
    the classifier's re-training after epoch 200."""
    return TwoStageLR(StepDecayLR(base_lr, milestones=tuple(milestones), gamma=gamma, warmup_epochs=warmup_epochs,
                                  warmup_from=warmup_from), stage_two_after, stage_two_factor)


@LR_SCHEDULES.register("paco", paper="Cui et al. 2021, PaCo's CIFAR script", epoch_args=("ramp_epochs", "milestones"))
def paco_lr(base_lr: float, ramp_epochs: int = 10, milestones: tuple[int, ...] = (321, 361),
            gamma: float = 0.1) -> RampStepLR:
    """A linear ramp over ``ramp_epochs`` (one epoch past the base, as the reference), then step decays."""
    return RampStepLR(base_lr, ramp_epochs=ramp_epochs, milestones=tuple(milestones), gamma=gamma)


@LR_SCHEDULES.register("cosine", paper="ImageNet-LT and iNaturalist recipes", epoch_args=("epochs", "warmup_epochs"))
def cosine_lr(
    base_lr: float, epochs: int, warmup_epochs: int = 0, min_lr: float = 0.0, steps_per_epoch: int = 1,
    stepped_first: bool = False,
) -> CosineLR:
    """Cosine decay over ``epochs`` with optional linear warm-up, per step."""
    return CosineLR(base_lr, epochs, warmup_epochs=warmup_epochs, min_lr=min_lr, steps_per_epoch=steps_per_epoch,
                    stepped_first=stepped_first)


@RHO_SCHEDULES.register("constant", epoch_args=())
def constant_rho(rho: float) -> ConstantRho:
    """The same rho throughout (the paper's default)."""
    return ConstantRho(rho)


@RHO_SCHEDULES.register("step", paper="Rangwani et al. 2022, CIFAR", epoch_args=("boundaries",))
def step_rho(
    values: tuple[float, ...] = (0.05, 0.1, 0.5, 0.6), boundaries: tuple[int, ...] = (5, 160, 180)
) -> StepRho:
    """The paper's CIFAR rho steps: 0.05 to epoch 5, 0.1 to 160, 0.5 to 180, 0.6 after."""
    return StepRho(tuple(values), tuple(boundaries))


@RHO_SCHEDULES.register("rho_steps", paper="Rangwani et al. 2022, ImageNet-LT and iNaturalist",
                        epoch_args=("boundaries",))
def rho_steps(values: tuple[float, ...], boundaries: tuple[int, ...] = (5, 60, 75)) -> StepRho:
    """Four rho values a, b, c, d for epochs 1-5, 6-60, 61-75 and 76 on (e.g. 0.05, 0.1, 0.5, 0.5)."""
    return StepRho(tuple(values), tuple(boundaries))


@RHO_SCHEDULES.register("after", paper="SAM after DRW (issue 17)", epoch_args=())
def after_rho(rho: float, start: int) -> StepRho:
    """rho 0 through epoch ``start`` (SGD's cost: a zero radius skips SAM's second pass), then ``rho``.
    A run builds it with ``start`` = loss.drw_start unless rho_args set it: SAM while DRW's weights are on."""
    return StepRho((0.0, rho), (start,))


@RHO_SCHEDULES.register("linear", epoch_args=("epochs",))
def linear_rho(min_rho: float, max_rho: float, epochs: int) -> LinearRho:
    """rho from ``min_rho`` at epoch 1 to ``max_rho`` at the last epoch."""
    return LinearRho(min_rho, max_rho, epochs)


def scale_epochs(epochs: int | list[int], old_total: int, new_total: int) -> int | list[int]:
    """Epoch milestones of an `old_total`-epoch schedule, moved to the same place in `new_total` epochs.

    The rule: m -> round(m * new_total / old_total), halves rounded up, at least 1
    (0, "from the start", stays 0). A list stays strictly increasing: each
    milestone is at least the one before plus 1. The paper's DRW after epoch
    160 of 200 becomes 16 of 20 (DRW from the 17th epoch); its 5 warm-up epochs
    become 1.
    """
    def one(m: int) -> int:
        return 0 if m == 0 else max(1, math.floor(m * new_total / old_total + 0.5))

    if isinstance(epochs, int):
        return one(epochs)
    scaled: list[int] = []
    for m in epochs:
        scaled.append(max(one(m), scaled[-1] + 1) if scaled else one(m))
    return scaled


def schedule_epoch_args(registry: Registry, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The epoch-valued arguments of schedule `name` as it would be built from `args`: given, else defaults.

    Arguments with no value and no default (a cosine's `epochs`, filled from
    the run's length when it is built) are left out.
    """
    defaults = inspect.signature(registry.get(name).builder).parameters
    found = {}
    for arg in registry.get(name).info.epoch_args:
        if arg in args:
            found[arg] = args[arg]
        elif arg in defaults and defaults[arg].default is not inspect.Parameter.empty:
            found[arg] = defaults[arg].default
    return {arg: list(value) if isinstance(value, tuple) else value for arg, value in found.items()}


def build_lr_schedule(name: str, **kwargs: Any) -> Schedule:
    """The lr schedule registered as ``name``; ConfigError for unknown names or bad arguments."""
    return _build(LR_SCHEDULES, name, kwargs)


def build_rho_schedule(name: str, **kwargs: Any) -> Schedule:
    """The rho schedule registered as ``name``; ConfigError for unknown names or bad arguments."""
    return _build(RHO_SCHEDULES, name, kwargs)


def apply_schedules(
    optimizer: torch.optim.Optimizer,
    epoch: int,
    step: int = 0,
    *,
    lr: Schedule | None = None,
    rho: Schedule | None = None,
) -> dict[str, float]:
    """Set every param group's ``lr`` and/or ``rho`` to the schedules' values at (epoch, step).

    Call it once per epoch (or per step for per-step schedules) before the
    updates. Returns the values set, e.g. ``{"lr": 0.1, "rho": 0.05}``, for logging.
    """
    values = {}
    if lr is not None:
        values["lr"] = lr(epoch, step)
    if rho is not None:
        values["rho"] = rho(epoch, step)
    for key in values:
        if any(key not in group for group in optimizer.param_groups):
            raise ConfigError(f"a {key} schedule was given but the optimizer has no {key!r}: wrap it in SAM")
    for key, value in values.items():
        for group in optimizer.param_groups:
            if isinstance(group[key], torch.Tensor):
                group[key].fill_(value)  # optimizers built with a tensor lr expect it to stay a tensor
            else:
                group[key] = value
    return values


def _build(registry: Registry, name: str, kwargs: dict[str, Any]) -> Schedule:
    builder = registry.get(name).builder
    try:
        return builder(**kwargs)
    except TypeError as error:  # a missing or misspelt argument
        raise ConfigError(f"{registry.kind} {name!r}: {error}") from None


def _check_epoch(epoch: int, last: int | None = None) -> None:
    if epoch < 1:
        raise ValueError(f"epoch {epoch} is invalid: epochs are 1-indexed")
    if last is not None and epoch > last:
        raise ValueError(f"epoch {epoch} is past the schedule's last epoch ({last})")


def _require_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")


def _require_rho(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ConfigError(f"rho schedule: {name} must be finite and >= 0 (0 turns SAM off), got {value!r}")


def _require_count(name: str, value: int, minimum: int = 0) -> None:
    if not (isinstance(value, int) and value >= minimum):
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _increasing_epochs(name: str, epochs: tuple[int, ...]) -> tuple[int, ...]:
    epochs = tuple(epochs)
    if any(not isinstance(e, int) or e < 1 for e in epochs) or list(epochs) != sorted(set(epochs)):
        raise ConfigError(f"{name} must be strictly increasing epochs >= 1, got {list(epochs)}")
    return epochs
