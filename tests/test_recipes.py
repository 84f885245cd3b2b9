"""Recipes: every one builds a valid config and a smoke variant; the CIFAR smoke path runs end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from jpeg_fixture import write_imagenet_lt, write_split
from tailsam.cli import main
from tailsam.config import apply_overrides, check
from tailsam.data import longtail_counts
from tailsam.errors import ConfigError
from tailsam.recipes import RECIPES, get_recipe
from tailsam.recipes.cifar import RHO
from tailsam.train import RunInterrupted, train
from test_train import stop_at


@pytest.mark.parametrize("name", RECIPES.names())
def test_every_recipe_and_its_smoke_variant_are_valid(name):
    config = get_recipe(name)
    assert check(config) is config and config.recipe == name
    doc = RECIPES.get(name).builder.__doc__
    assert f"tailsam train {name}" in doc and "Runtime" in doc
    smoke = get_recipe(f"{name}:smoke")
    assert smoke.train.epochs <= 6 and 1 <= smoke.loss.drw_start < smoke.train.epochs   # DRW is on at the end
    counts = longtail_counts(smoke.data.n_max, 100 if smoke.data.dataset == "cifar100" else 10,
                             smoke.data.profile, smoke.data.ratio)
    assert min(counts) >= 1 and sum(counts) < 1300, "a smoke run keeps every class and about a thousand images"
    kept = ("recipe", "data", "train", "loss", "optim", "model", "sam", "method")   # the rest is the recipe's own
    assert {k: v for k, v in smoke.to_dict().items() if k not in kept} == \
        {k: v for k, v in config.to_dict().items() if k not in kept}
    assert (smoke.loss.name, smoke.loss.weighting, smoke.model.head, smoke.sam.kind, smoke.method.name) == (
        config.loss.name, config.loss.weighting, config.model.head, config.sam.kind, config.method.name)
    if smoke.sam.rho_schedule == "linear":   # CIFAR: rho rises to the recipe's own
        assert smoke.sam.rho_args["max_rho"] == config.sam.rho


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_cifar_recipes_follow_the_paper_protocol(dataset):
    config = get_recipe(f"{dataset}-ldam-drw-sam")
    assert (config.model.name, config.model.head, config.loss.name) == ("resnet32", "normed", "ldam")
    assert (config.optim.lr, config.optim.momentum, config.optim.weight_decay, config.optim.batch_size) == \
        (0.1, 0.9, 2e-4, 128)
    assert config.train.epochs == 200 and config.loss.weighting == "drw" and config.loss.drw_start == 160
    assert config.optim.lr_args == {"warmup_epochs": 5, "decay_epochs": [160, 180]}
    assert config.sam.rho == 0.8 and config.data.ratio == 100
    assert get_recipe(f"{dataset}-ce-sam").sam.rho == RHO[dataset]["ce"]
    assert get_recipe(f"{dataset}-ce-drw").sam.kind == "none"


def test_recipes_command_lists_the_papers_numbers(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in RECIPES.names():
        assert name in out
    for entry in RECIPES:
        for top1 in entry.info.paper_top1.values():
            assert str(top1) in out


def test_cifar10_smoke_recipe_runs_end_to_end(tmp_path, capsys):
    # A CIFAR-10-shaped npz of random pixels with 300 training images per class: enough for :smoke.
    rng = np.random.RandomState(0)
    y_train, y_test = np.repeat(np.arange(10), 300), np.repeat(np.arange(10), 20)
    np.savez(tmp_path / "cifar10.npz",
             x_train=rng.randint(0, 256, (3000, 32, 32, 3), dtype=np.uint8), y_train=y_train,
             x_test=rng.randint(0, 256, (200, 32, 32, 3), dtype=np.uint8), y_test=y_test)
    out = tmp_path / "run"
    assert main(["train", "cifar10-ldam-drw-sam:smoke", "--data-root", str(tmp_path), "--out", str(out),
                 "--quiet"]) == 0
    for name in ("config.json", "env.json", "data.json", "metrics.jsonl", "final.json", "checkpoints/last.pt"):
        assert (out / name).is_file(), name
    data = json.loads((out / "data.json").read_text())
    assert data["counts"] == longtail_counts(300, 10, "exp", 10)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r["drw"] for r in records] == [False] * 3 + [True] * 3
    assert [r["lr"] for r in records] == pytest.approx([0.1] * 5 + [1e-3])
    assert records[0]["rho"] == 0.05 and records[-1]["rho"] == 0.8 and "confusion" in records[-1]["test"]


@pytest.fixture(scope="module")
def smoke_roots(tmp_path_factory) -> dict[str, Path]:
    """A data root per dataset, holding just enough generated images for every :smoke variant."""
    root = tmp_path_factory.mktemp("smoke-data")
    rng = np.random.RandomState(0)
    for name, classes, per_class, test_per_class in (("cifar10", 10, 300, 10), ("cifar100", 100, 30, 2)):
        np.savez(root / f"{name}.npz",
                 x_train=rng.randint(0, 256, (classes * per_class, 32, 32, 3), dtype=np.uint8),
                 y_train=np.repeat(np.arange(classes), per_class),
                 x_test=rng.randint(0, 256, (classes * test_per_class, 32, 32, 3), dtype=np.uint8),
                 y_test=np.repeat(np.arange(classes), test_per_class))
    inat = root / "inat2018"
    for list_name, folder, counts in (("iNaturalist18_train.txt", "train_val2018", [8, 6, 5, 4, 3, 3, 2, 2, 1, 1]),
                                      ("iNaturalist18_val.txt", "train_val2018/val", [2] * 10)):
        (inat / list_name).parent.mkdir(parents=True, exist_ok=True)
        (inat / list_name).write_text("\n".join(write_split(inat, folder, counts, rng)) + "\n")
    return {"cifar10": root, "cifar100": root, "digits": root, "inat2018": inat,
            "imagenet-lt": write_imagenet_lt(root / "imagenet", [8, 6, 5, 4, 3, 3, 2, 2, 1, 1], [2] * 10)}


WITH_REFERENCE = [entry.name for entry in RECIPES if entry.info.reference is not None]


def test_reference_variants_compose_with_smoke_and_are_refused_where_absent():
    assert len(WITH_REFERENCE) == 8
    reference = get_recipe("cifar100-imbsam:reference")
    assert (reference.model.name, reference.data.protocol, reference.optim.lr_args) == (
        "resnet34_cifar", "first-n", {"stepped_first": True})
    assert get_recipe("cifar100-imbsam").model.name == "resnet32"
    both = get_recipe("cifar100-imbsam:reference:smoke")
    assert both.to_dict() == get_recipe("cifar100-imbsam:smoke:reference").to_dict()   # one order, one recipe
    assert (both.data.protocol, both.train.epochs, both.model.name) == ("first-n", 6, "resnet8")
    assert (get_recipe("cifar10-cc-sam:reference").model.name, get_recipe("cifar10-cc-sam:reference").data.seed) \
        == ("resnet32_bbn", 42)
    assert get_recipe("cifar10-focal-sam:reference").to_dict() == get_recipe("cifar10-focal-sam").to_dict() | {
        "recipe": "cifar10-focal-sam:reference"}
    with pytest.raises(ConfigError, match="has no :reference variant"):
        get_recipe("cifar10-ldam-drw-sam:reference")
    with pytest.raises(ConfigError, match="unknown or repeated recipe variant"):
        get_recipe("cifar10-imbsam:smoke:smoke")


@pytest.mark.parametrize("name, model", [("cifar100-imbsam", "resnet34_cifar"), ("cifar100-sse-sam", "resnet34_cifar"),
                                         ("cifar10-cc-sam", "resnet32_bbn")])
def test_reference_backbones_train_a_step_with_their_methods(name, model, smoke_roots, tmp_path):
    config = apply_overrides(get_recipe(f"{name}:reference:smoke"), [
        f"model.name={model}", "train.tensorboard=false", f"data.root={smoke_roots['cifar10']}"])
    with pytest.raises(RunInterrupted):
        train(config, tmp_path, verbose=False, on_step=stop_at(1, 0))
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch_totals"][1].item() == 1 and math.isfinite(state["epoch_totals"][0].item())


@pytest.mark.parametrize("name", RECIPES.names() + [f"{name}:reference" for name in WITH_REFERENCE])
def test_every_smoke_variant_takes_two_steps_on_a_tiny_backbone(name, smoke_roots, tmp_path):
    smoke = get_recipe(f"{name}:smoke")
    tiny = ["model.name=resnet8", "train.tensorboard=false", f"data.root={smoke_roots[smoke.data.dataset]}"]
    if smoke.data.dataset in ("imagenet-lt", "inat2018"):   # 35 images: batches of 16 make 3 steps an epoch
        tiny += ["optim.batch_size=16", "data.workers=0"]
    with pytest.raises(RunInterrupted):   # SIGTERM after the second step: a checkpoint of two steps
        train(apply_overrides(smoke, tiny), tmp_path, verbose=False, on_step=stop_at(1, 1))
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert (state["loader"]["epoch"], state["loader"]["position"]) == (0, 2)
    loss, steps = state["epoch_totals"][:2].tolist()
    assert steps == 2 and math.isfinite(loss) and loss > 0
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


def test_glmc_sam_smoke_recipe_runs_end_to_end(smoke_roots, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "cifar10-glmc-sam:smoke", "--data-root", str(smoke_roots["cifar10"]), "--out", str(out),
                 "--quiet"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r["alpha"] for r in records] == pytest.approx([1 - (e / 6) ** 2 for e in range(6)])
    assert all(math.isfinite(r["train_loss"]) for r in records)
    data = json.loads((out / "data.json").read_text())
    assert data["protocol"] == "ldam" and data["counts"] == longtail_counts(300, 10, "exp", 10)
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert {"head.fc_cb.weight", "head.projection.weight"} <= set(state["model"])
