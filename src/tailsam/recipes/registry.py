"""The recipe registry, the `@recipe` decorator, the variant rules and the listing `tailsam recipes` prints.

A recipe is a function returning a Config, registered under its own name with
underscores as hyphens (`def cifar10_ldam_drw_sam()` is `cifar10-ldam-drw-sam`),
so the name you grep is the definition; its docstring gives the command, the
paper's figure and the runtime.

Variants follow the name after colons and compose: `:smoke` (every recipe: seconds on a CPU) and
`:reference` (recipes of methods published with another backbone, subset or schedule: the reference
code's own setting, for parity with its numbers), e.g. `cifar100-imbsam:reference:smoke`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable

from tailsam.config import Config, apply_overrides, check
from tailsam.errors import ConfigError
from tailsam.optim.schedules import LR_SCHEDULES, RHO_SCHEDULES, scale_epochs, schedule_epoch_args
from tailsam.registry import Registry


@dataclass(frozen=True)
class RecipeInfo:
    paper_top1: dict[float, float] = field(default_factory=dict)   # imbalance ratio -> the paper's top-1 %
    smoke: tuple[str, ...] = ()   # dotted overrides the :smoke variant applies on top of `smoke()`
    reference: tuple[str, ...] | None = None   # dotted overrides of the :reference variant (None: none)


RECIPES = Registry("recipe", RecipeInfo)
SMOKE, REFERENCE = "smoke", "reference"


def recipe(*, paper_top1: dict[float, float] | None = None,
           smoke_overrides: Callable[[Config], list[str]] | tuple[str, ...] = (),
           reference: tuple[str, ...] | None = None) -> Callable:
    """Register the decorated function as a recipe named after it; `smoke_overrides` may derive from its Config;
    `reference` gives the overrides of its :reference variant."""
    def add(function: Callable[[], Config]) -> Callable[[], Config]:
        overrides = smoke_overrides(function()) if callable(smoke_overrides) else smoke_overrides
        RECIPES.register(function.__name__.replace("_", "-"), paper_top1=dict(paper_top1 or {}),
                         smoke=tuple(overrides), reference=reference)(function)
        return function

    return add


def get_recipe(name: str) -> Config:
    """The Config of recipe `name` with its variants (`name:reference`, `name:smoke`, both), in that order."""
    base, *variants = name.split(":")
    entry = RECIPES.get(base)
    unknown = sorted(set(variants) - {SMOKE, REFERENCE})
    if unknown or len(set(variants)) != len(variants):
        raise ConfigError(f"unknown or repeated recipe variant in {name!r}; variants: :{REFERENCE} "
                          f"(some recipes) and :{SMOKE}")
    config = entry.builder()
    if REFERENCE in variants:
        if entry.info.reference is None:
            with_reference = ", ".join(e.name for e in RECIPES if e.info.reference is not None)
            raise ConfigError(f"recipe {base} has no :{REFERENCE} variant (it is tailsam's own setting); "
                              f"these have one: {with_reference}")
        config = apply_overrides(config, list(entry.info.reference))
    config.recipe = ":".join([base, *(v for v in (REFERENCE, SMOKE) if v in variants)])   # one spelling per run
    if SMOKE in variants:
        return apply_overrides(smoke(config), list(entry.info.smoke))
    return check(config)


def recipe_with_overrides(name: str, overrides: list[str]) -> tuple[Config, list[str]]:
    """Recipe `name` with a user's dotted overrides, and the milestones that moved, in words.

    When the overrides change a full recipe's `train.epochs`, its epoch
    milestones move with it by one rule (`tailsam.optim.schedules.scale_epochs`):
    DRW's start and the lr and rho schedules' epoch arguments (warm-up, decays,
    boundaries). A milestone the overrides set themselves is kept as given.
    Smoke variants and replayed config.json files are never scaled.
    """
    base = get_recipe(name)
    config = apply_overrides(base, overrides)
    if SMOKE in name.split(":")[1:] or config.train.epochs == base.train.epochs:
        return config, []
    given = {item.partition("=")[0].strip() for item in overrides}
    old, new = base.train.epochs, config.train.epochs
    moved = {}
    if config.loss.weighting == "drw" and "loss.drw_start" not in given:
        moved["loss.drw_start"] = (config.loss.drw_start, scale_epochs(config.loss.drw_start, old, new))
    for section, registry, name_key, args in (
            ("optim.lr_args", LR_SCHEDULES, config.optim.lr_schedule, config.optim.lr_args),
            ("sam.rho_args", RHO_SCHEDULES, config.sam.rho_schedule, config.sam.rho_args)):
        if section == "sam.rho_args" and config.sam.kind == "none":
            continue
        for arg, value in schedule_epoch_args(registry, name_key, args).items():
            if f"{section}.{arg}" not in given:
                moved[f"{section}.{arg}"] = (value, scale_epochs(value, old, new))
    changed = {key: pair for key, pair in moved.items() if pair[0] != pair[1]}
    config = apply_overrides(config, [f"{key}={_override_value(after)}" for key, (_, after) in changed.items()])
    notes = [f"{key} {before} -> {after}" for key, (before, after) in changed.items()]
    return config, notes


def _override_value(value: int | list[int]) -> str:
    """A dotted override's value: "16,18", "8," for a one-item list (a list, not the number 8), or "16"."""
    return ",".join(map(str, value)) + ("," if len(value) == 1 else "") if isinstance(value, list) else str(value)


def smoke(config: Config) -> Config:
    """The same recipe shrunk to 2 epochs on a few hundred training images, every feature still on.

    The largest class keeps 100 images (more when the ratio needs it, so the
    smallest keeps at least one: int(n_max / ratio) >= 1), 20 test images per
    class; the warm-up is one epoch, and DRW and the lr drop switch on for the
    second epoch.
    """
    n_max = max(100, math.ceil(config.data.ratio) + 1)
    lr_args = dict(config.optim.lr_args)
    if config.optim.lr_schedule == "paper_cifar":
        lr_args.update(warmup_epochs=1, decay_epochs=[1, 2])
    return check(dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, n_max=n_max, test_per_class=20),
        loss=dataclasses.replace(config.loss, drw_start=1),
        optim=dataclasses.replace(config.optim, lr_args=lr_args),
        train=dataclasses.replace(config.train, epochs=2, eval_every=1),
    ))


def recipe_table() -> str:
    """One line per recipe: name, what it trains (the method, or the loss of the plain method), SAM, the
    paper's top-1 by imbalance ratio."""
    lines = [f"{'recipe':32s} {'dataset':11s} {'method / loss':14s} {'sam':13s} paper top-1 (ratio: %)"]
    for entry in RECIPES:
        config = entry.builder()
        loss = config.loss.name + ("+drw" if config.loss.weighting == "drw" else "")
        if config.method.name != "plain":
            loss = config.method.name
        sam = "-" if config.sam.kind == "none" else f"{config.sam.kind} rho={config.sam.rho:g}"
        if config.sam.kind != "none" and config.sam.rho_schedule != "constant":
            sam = f"{config.sam.kind} {config.sam.rho_schedule}"
        paper = ", ".join(f"{ratio:g}: {top1}" for ratio, top1 in entry.info.paper_top1.items()) or "-"
        name = entry.name + ("*" if entry.info.reference is not None else "")
        lines.append(f"{name:32s} {config.data.dataset:11s} {loss:14s} {sam:13s} {paper}")
    lines.append("Append :smoke to any name for a run of seconds: CIFAR, 6 epochs of ResNet-8 on ~1,200 images "
                 "(ratio 10); the others 2 epochs on a few hundred.")
    lines.append("* has a :reference variant: the method's own code's backbone, subset and schedule "
                 "(cifar100-imbsam:reference); variants compose (cifar100-imbsam:reference:smoke).")
    lines.append("train.epochs=N moves a recipe's epoch milestones (DRW start, warm-up, lr decays, rho boundaries) "
                 "from m of E epochs to round(m * N / E), halves up, at least 1; milestones you set are kept.")
    return "\n".join(lines)
