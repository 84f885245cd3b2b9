"""What a sweep runs: every recipe x seed as its own run directory, all validated before anything starts.

    runs = plan_sweep(["cifar10-ldam-drw", "cifar10-ldam-drw-sam"], [0, 1, 2], ["train.epochs=30"], "runs/sweep")

The seed is `train.seed` (model initialisation and batch order); the data seed
stays the recipe's, so every seed trains on the same long-tailed images. Run
directories are OUT/<recipe>/seed<S> (":" in a recipe name becomes "_").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tailsam.config import Config, apply_overrides
from tailsam.errors import ConfigError
from tailsam.recipes import recipe_with_overrides
from tailsam.run.resume import check_same_config   # `tailsam train`'s check before resuming, made up front
from tailsam.run.directory import RunDir

SEEDS_PREFIX = "seeds="
LOG_NAME = "train.log"
USAGE_NAME = "usage.json"


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its config, the `tailsam train` arguments that rebuild it, and its directory."""

    recipe: str
    seed: int
    root: Path
    config: Config
    train_args: tuple[str, ...]
    finished: bool    # final.json of this very config is already there: reused, not launched

    @property
    def label(self) -> str:
        return f"{self.recipe} seed {self.seed}"

    @property
    def log(self) -> Path:
        """Everything the run printed, every session appended."""
        return self.root / LOG_NAME

    @property
    def usage(self) -> Path:
        """Exit status, wall time and peak memory of each session (tailsam.worker)."""
        return self.root / USAGE_NAME


def split_arguments(items: list[str]) -> tuple[list[str], list[int], list[str]]:
    """The sweep's positional words -> (recipes, seeds, overrides): `seeds=0,1,2`, key=value, else a recipe."""
    recipes, seeds, overrides = [], None, []
    for item in items:
        if item.startswith(SEEDS_PREFIX):
            if seeds is not None:
                raise ConfigError("seeds= is given twice; give one list, e.g. seeds=0,1,2")
            seeds = parse_seeds(item[len(SEEDS_PREFIX):])
        elif "=" in item:
            overrides.append(item)
        else:
            recipes.append(item)
    return recipes, [0] if seeds is None else seeds, overrides


def parse_seeds(text: str) -> list[int]:
    """"0,1,2" -> [0, 1, 2]: distinct non-negative integers."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise ConfigError(f"seeds={text} is not a list of non-negative integers; write e.g. seeds=0,1,2")
    seeds = [int(part) for part in parts]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds={text} repeats a seed; each seed is one run")
    return seeds


def run_dir(out: str | Path, recipe: str, seed: int) -> Path:
    return Path(out) / recipe.replace(":", "_") / f"seed{seed}"


def plan_sweep(recipes: list[str], seeds: list[int], overrides: list[str], out: str | Path, *,
               data_root: str | None = None) -> list[PlannedRun]:
    """Resolve and check every run's config; raise ConfigError/UserError before anything is written.

    A run directory that already holds a run must hold this run's config (the
    same rule as resuming with `tailsam train`); with final.json it is finished
    and will be reused. Runs come seed by seed, in the order of `recipes`: the order they start in.
    """
    if not recipes:
        raise ConfigError("give at least one recipe (see `tailsam recipes`)")
    repeated = sorted({r for r in recipes if recipes.count(r) > 1})
    if repeated:
        raise ConfigError(f"recipe {repeated[0]} is given twice; give each once and the seeds with seeds=")
    if not seeds:
        raise ConfigError("give at least one seed, e.g. seeds=0,1,2")
    if any(item.partition("=")[0].strip() == "train.seed" for item in overrides):
        raise ConfigError("train.seed is what seeds= sets; drop the train.seed= override")
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the sweep's run directories")
    extra = [f"data.root={data_root}"] if data_root is not None else []
    # As `tailsam train` builds each run's config: milestones follow an overridden train.epochs.
    bases = {recipe: recipe_with_overrides(recipe, overrides + extra)[0] for recipe in recipes}
    runs = []
    # Seed by seed, recipes in the order given: a sweep cut short still has every recipe's first seed.
    for seed in seeds:
        for recipe, base in bases.items():
            config = apply_overrides(base, [f"train.seed={seed}"])
            root = run_dir(out, recipe, seed)
            args = ("train", recipe, *overrides, f"train.seed={seed}", "--out", str(root))
            if data_root is not None:
                args += ("--data-root", data_root)
            runs.append(PlannedRun(recipe, seed, root, config, args, finished=_finished(root, config)))
    return runs


def _finished(root: Path, config: Config) -> bool:
    run = RunDir(root)
    if not (run.checkpoint.is_file() or run.final.is_file()):
        return False   # nothing there yet, or a run that never saved a checkpoint: it starts afresh
    check_same_config(run, config)
    try:
        json.loads(run.final.read_text())
    except (OSError, ValueError):
        return False   # no final.json yet, or a damaged one: the run resumes and writes it again
    return True
