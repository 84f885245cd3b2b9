"""Opt-in checks on the real CIFAR files: set TAILSAM_CIFAR10_NPZ (and/or TAILSAM_CIFAR100_NPZ) to the .npz."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tailsam.data import CIFAR10, CIFAR100, read_cifar_npz, select_longtail

pytestmark = pytest.mark.realdata


def real_path(spec, variable) -> str:
    path = os.environ.get(variable)
    if not path:
        pytest.skip(f"set {variable} to the real {spec.name} .npz to run this check")
    return path


def real(spec, variable):
    return read_cifar_npz(real_path(spec, variable), spec)


@pytest.mark.parametrize("spec, variable, per_class", [
    (CIFAR10, "TAILSAM_CIFAR10_NPZ", (5000, 1000)), (CIFAR100, "TAILSAM_CIFAR100_NPZ", (500, 100)),
])
def test_real_file_has_the_official_class_sizes(spec, variable, per_class):
    data = real(spec, variable)
    assert data.x_train.shape == (50000, 32, 32, 3) and data.x_test.shape == (10000, 32, 32, 3)
    assert set(np.bincount(data.y_train, minlength=spec.num_classes)) == {per_class[0]}
    assert set(np.bincount(data.y_test, minlength=spec.num_classes)) == {per_class[1]}


def test_real_cifar10_longtail_split_selects_real_images():
    data = real(CIFAR10, "TAILSAM_CIFAR10_NPZ")
    split = select_longtail(data.y_train, 10, ratio=100, seed=0)
    assert list(split.counts) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    # The shared file keeps pixels only for the seed-0 images: every selected one must carry some.
    assert data.x_train[split.indices].reshape(len(split.indices), -1).max(axis=1).min() > 0


SMOKE_RECIPES = [name for name in __import__("tailsam.recipes", fromlist=["RECIPES"]).RECIPES.names()
                 if name.startswith("cifar")]


@pytest.mark.parametrize("name", SMOKE_RECIPES)
def test_every_cifar_smoke_recipe_learns_at_least_twice_chance(name, tmp_path):
    """The first thing a new user runs must show learning on the real data, not chance."""
    from tailsam.config import apply_overrides
    from tailsam.recipes import get_recipe
    from tailsam.train import train

    spec, variable = (CIFAR100, "TAILSAM_CIFAR100_NPZ") if name.startswith("cifar100") else (
        CIFAR10, "TAILSAM_CIFAR10_NPZ")
    path = real_path(spec, variable)
    config = apply_overrides(get_recipe(f"{name}:smoke"), [f"data.root={os.path.dirname(path)}"])
    final = train(config, tmp_path / "run", verbose=False)
    chance = 100 / spec.num_classes
    print(f"{name}:smoke top-1 {final['top1']:.2f}% (chance {chance:g}%), {final['loop_wall_s']} s")
    assert final["top1"] >= 2 * chance
