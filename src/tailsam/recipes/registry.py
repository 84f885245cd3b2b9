"""The recipe registry, the `:smoke` variant rule and the listing `tailsam recipes` prints."""

from __future__ import annotations

import dataclasses
import math

from tailsam.config import Config, apply_overrides, check
from tailsam.errors import ConfigError
from tailsam.registry import Registry

# Metadata: `paper_top1` ({imbalance ratio: top-1 %} from the paper, empty when it reports none);
# optional `smoke`: dotted overrides the :smoke variant applies on top of `smoke()` (e.g. tiny images).
RECIPES = Registry("recipe")
SMOKE = "smoke"


def get_recipe(name: str) -> Config:
    """The Config of recipe `name`, or of its smoke variant for `name:smoke`."""
    base, _, variant = name.partition(":")
    entry = RECIPES.get(base)
    config = entry.builder()
    config.recipe = name
    if variant == SMOKE:
        return apply_overrides(smoke(config), list(entry.metadata.get("smoke", ())))
    if variant:
        raise ConfigError(f"unknown recipe variant {variant!r} in {name!r}; the only variant is :{SMOKE}")
    return check(config)


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
    """One line per recipe: name, what it trains, the paper's top-1 by imbalance ratio."""
    lines = [f"{'recipe':26s} {'dataset':11s} {'loss':14s} {'sam':13s} paper top-1 (ratio: %)"]
    for entry in RECIPES:
        config = entry.builder()
        loss = config.loss.name + ("+drw" if config.loss.weighting == "drw" else "")
        sam = "-" if config.sam.kind == "none" else f"{config.sam.kind} rho={config.sam.rho:g}"
        if config.sam.kind != "none" and config.sam.rho_schedule != "constant":
            sam = f"{config.sam.kind} {config.sam.rho_schedule}"
        paper = ", ".join(f"{ratio:g}: {top1}" for ratio, top1 in entry.metadata["paper_top1"].items()) or "-"
        lines.append(f"{entry.name:26s} {config.data.dataset:11s} {loss:14s} {sam:13s} {paper}")
    lines.append("Append :smoke to any name for a 2-epoch run on a few hundred images.")
    return "\n".join(lines)
