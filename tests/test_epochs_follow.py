"""Schedules follow train.epochs: one rule moves a recipe's milestones when a user shortens or stretches it."""

from __future__ import annotations

import json

import pytest
import torch

from tailsam.cli import main
from tailsam.optim.schedules import scale_epochs
from tailsam.recipes import get_recipe, recipe_with_overrides
from tailsam.run.build import build_criterion, build_schedules


@pytest.mark.parametrize("epochs, old, new, expected", [
    (160, 200, 20, 16),            # 16.0
    (5, 200, 20, 1),               # 0.5: halves round up
    (5, 200, 30, 1),               # 0.75
    (180, 200, 30, 27),            # 27.0
    (60, 90, 9, 6),
    (3, 200, 20, 1),               # 0.3 would be 0: at least 1
    (0, 200, 20, 0),               # "from the start" stays so
    (160, 200, 400, 320),
    ([160, 180], 200, 20, [16, 18]),
    ([160, 180], 200, 2, [2, 3]),  # 1.6 and 1.8 both round to 2: kept strictly increasing
    ([5, 60, 75], 90, 9, [1, 6, 8]),
])
def test_the_rounding_rule(epochs, old, new, expected):
    assert scale_epochs(epochs, old, new) == expected


def test_twenty_epochs_of_the_paper_schedule_put_drw_and_the_lr_drops_where_200_have_them():
    config, moved = recipe_with_overrides("cifar10-ldam-drw-sam", ["train.epochs=20"])
    assert moved == ["loss.drw_start 160 -> 16", "optim.lr_args.warmup_epochs 5 -> 1",
                     "optim.lr_args.decay_epochs [160, 180] -> [16, 18]"]
    _, drw = build_criterion(config, [50] * 10, torch.device("cpu"))
    # DRW from the 17th of 20 epochs, as from the 161st of 200.
    assert drw.weight_at(16) is None and drw.weight_at(17) is not None
    lr, rho = build_schedules(config)
    assert [lr(e) for e in (1, 2, 16, 17, 18, 19, 20)] == pytest.approx([0.1, 0.1, 0.1, 1e-3, 1e-3, 1e-5, 1e-5])
    assert rho(20) == 0.8


def test_milestones_set_by_the_user_win_and_the_others_still_follow():
    config, moved = recipe_with_overrides("cifar10-ldam-drw", ["train.epochs=20", "loss.drw_start=10",
                                                               "optim.lr_args.warmup_epochs=3"])
    assert (config.loss.drw_start, config.optim.lr_args) == (10, {"warmup_epochs": 3, "decay_epochs": [16, 18]})
    assert moved == ["optim.lr_args.decay_epochs [160, 180] -> [16, 18]"]


def test_rho_boundaries_that_are_only_defaults_follow_too():
    config, moved = recipe_with_overrides("imagenet-lt-ldam-drw-sam", ["train.epochs=9"])
    assert config.sam.rho_args["boundaries"] == [1, 6, 8] and config.loss.drw_start == 6
    assert "sam.rho_args.boundaries [5, 60, 75] -> [1, 6, 8]" in moved


def test_nothing_moves_for_smoke_variants_or_the_recipe_own_length():
    assert recipe_with_overrides("cifar10-ldam-drw-sam:smoke", ["train.epochs=3"])[1] == []
    config, moved = recipe_with_overrides("cifar10-ldam-drw-sam", ["train.epochs=200", "sam.rho=0.5"])
    assert moved == [] and config.loss.drw_start == 160


def test_the_command_prints_the_moved_milestones_once_and_a_replay_keeps_them(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "digits-ldam-drw", "train.epochs=6", "data.ratio=20", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("the recipe's milestones follow") == 1
    assert "loss.drw_start 40 -> 4" in err and "optim.lr_args.decay_epochs [40, 57] -> [4, 6]" in err
    saved = json.loads((out / "config.json").read_text())
    assert saved["loss"]["drw_start"] == 4 and saved["optim"]["lr_args"]["decay_epochs"] == [4, 6]
    # Replaying the config.json with another length takes it as written: the rule is never applied twice.
    assert main(["train", "--config", str(out / "config.json"), "train.epochs=3", "--out", str(tmp_path / "replay"),
                 "--quiet"]) == 0
    replayed = json.loads((tmp_path / "replay" / "config.json").read_text())
    assert replayed["loss"]["drw_start"] == 4 and replayed["train"]["epochs"] == 3
    assert "milestones follow" not in capsys.readouterr().err
    assert get_recipe("digits-ldam-drw").loss.drw_start == 40


def test_a_moved_one_item_milestone_list_stays_a_list():
    from tailsam.config import apply_overrides
    from tailsam.recipes.registry import _override_value

    assert (_override_value([16, 18]), _override_value([8]), _override_value(16)) == ("16,18", "8,", "16")
    config = apply_overrides(get_recipe("cifar10-ce-drw"), [f"optim.lr_args.decay_epochs={_override_value([8])}"])
    assert config.optim.lr_args["decay_epochs"] == [8]      # "8" alone would be the number 8
    assert build_schedules(config)[0](9) == pytest.approx(1e-3)
