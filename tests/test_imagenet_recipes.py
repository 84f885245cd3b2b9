"""ImageNet-LT / iNaturalist recipes: the protocol, smoke runs end to end on tiny JPEGs, exact resume, CLI errors."""

from __future__ import annotations

import json
import math
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from jpeg_fixture import write_folder_tree, write_imagenet_lt
from tailsam.cli import main
from tailsam.config import apply_overrides
from tailsam.recipes import RECIPES, get_recipe
from tailsam.train import RunInterrupted, train
from tailsam.run.build import build_criterion, build_schedules

TRAIN_COUNTS = [8, 6, 5, 4, 3, 3, 2, 2, 1, 1]   # 10 classes: what the :smoke variants keep


@pytest.mark.parametrize("dataset, lr, ldam_wd, rho_ce, rho_ldam, top1", [
    ("imagenet-lt", 0.2, 2e-4, [0.05, 0.1, 0.5, 0.5], [0.05, 0.1, 0.5, 0.5], 53.1),
    ("inat2018", 0.1, 1e-4, [0.05, 0.1, 0.1, 0.2], [0.05, 0.1, 0.5, 0.5], 70.1),
])
def test_large_scale_recipes_follow_the_paper_protocol(dataset, lr, ldam_wd, rho_ce, rho_ldam, top1):
    config = get_recipe(f"{dataset}-ldam-drw-sam")
    assert (config.model.name, config.model.head, config.loss.name, config.loss.hparams) == \
        ("resnet50", "normed", "ldam", {"max_m": 0.3})
    assert (config.optim.lr, config.optim.weight_decay, config.optim.batch_size, config.train.epochs) == \
        (lr, ldam_wd, 256, 90)
    assert get_recipe(f"{dataset}-ce-drw").optim.weight_decay == 2e-4
    assert (config.data.image_size, config.data.resize) == (224, 256)
    lr_at, _ = build_schedules(config)
    assert lr_at(1) == lr and lr_at(46) == pytest.approx(lr / 2) and lr_at(90) == pytest.approx(
        lr * (1 + math.cos(math.pi * 89 / 90)) / 2)
    epochs = (1, 5, 6, 60, 61, 75, 76, 90)   # the four ranges' first and last epochs
    for method, rho in (("ce-drw-sam", rho_ce), ("ldam-drw-sam", rho_ldam)):
        _, rho_at = build_schedules(get_recipe(f"{dataset}-{method}"))
        assert [rho_at(e) for e in epochs] == [r for r in rho for _ in (0, 1)]
    _, drw = build_criterion(config, [5, 3, 1], torch.device("cpu"))
    assert drw.weight_at(60) is None and drw.weight_at(61) is not None   # weights on from the 61st epoch
    assert f"{top1}%" in RECIPES.get(f"{dataset}-ldam-drw-sam").builder.__doc__
    assert get_recipe(f"{dataset}-ce-drw").sam.kind == "none"
    smoke = get_recipe(f"{dataset}-ldam-drw-sam:smoke")
    assert (smoke.data.image_size, smoke.data.classes, smoke.train.epochs) == (32, 10, 2)


def test_imagenet_lt_smoke_recipe_trains_from_split_lists_through_the_cli(tmp_path, capsys):
    root = write_imagenet_lt(tmp_path / "imagenet", TRAIN_COUNTS, [2] * 10)
    out = tmp_path / "run"
    assert main(["train", "imagenet-lt-ldam-drw-sam:smoke", "optim.batch_size=16", "--data-root", str(root),
                 "--out", str(out), "--quiet"]) == 0
    assert "final top-1" in capsys.readouterr().out
    data = json.loads((out / "data.json").read_text())
    assert data["counts"] == TRAIN_COUNTS and data["n_test"] == 20 and data["dataset"] == "imagenet-lt"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and [r["drw"] for r in records] == [False, True]
    final = json.loads((out / "final.json").read_text())
    assert final["train_counts"] == TRAIN_COUNTS and len(final["per_class"]) == 10
    # Every class has < 20 training images: all few-shot; head/mid/tail are thirds of the 10.
    groups = records[-1]["test"]["group_accuracy"]
    assert groups["many"] is None and groups["medium"] is None and groups["few"] == final["top1"]


FOLDER = ["data.dataset=folder", "data.workers=0", "data.image_size=16", "data.resize=18", "optim.batch_size=16",
          "data.classes=4"]


def test_folder_smoke_run_resumed_mid_epoch_equals_an_uninterrupted_one(tmp_path):
    write_folder_tree(tmp_path / "photos", [10, 7, 5, 3])   # holdout 0.2: 8, 6, 4, 2 to train on
    config = apply_overrides(get_recipe("imagenet-lt-ce-drw-sam:smoke"), FOLDER + [f"data.root={tmp_path / 'photos'}"])
    train(config, tmp_path / "whole", verbose=False)
    data = json.loads((tmp_path / "whole" / "data.json").read_text())
    assert data["counts"] == [8, 6, 4, 2] and data["n_test"] == 5
    assert data["class_names"] == ["class_0", "class_1", "class_2", "class_3"]

    def stop(epoch, step):
        if (epoch, step) == (2, 0):   # 20 images, batch 16: the first of the epoch's 2 steps
            signal.raise_signal(signal.SIGTERM)

    with pytest.raises(RunInterrupted):
        train(config, tmp_path / "resumed", verbose=False, on_step=stop)
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    assert state["loader"] == {"epoch": 1, "position": 1}
    train(config, tmp_path / "resumed", verbose=False)
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)["model"]
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert (tmp_path / "whole" / "metrics.jsonl").read_bytes() == (tmp_path / "resumed" / "metrics.jsonl").read_bytes()


def truncate_after_header(path):
    noise = np.random.RandomState(0).randint(0, 256, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=90)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


# Each case: (edit of a good ImageNet-LT tree, text the one-line message must contain).
BAD_INPUT = [
    ("list line without a label", lambda root: (root / "ImageNet_LT_train.txt").write_text("train/c000/0000.jpg\n"),
     "ImageNet_LT_train.txt, line 1: expected `relative/path.jpg label`"),
    ("label out of range", lambda root: (root / "ImageNet_LT_test.txt").write_text("val/c000/0000.jpg 1000\n"),
     "label 1000 of val/c000/0000.jpg is outside 0..999"),
    ("missing root", lambda root: root.rename(root.with_name("moved")), "imagenet: no such folder"),
    ("corrupt jpeg", lambda root: (root / "train/c003/0001.jpg").write_bytes(b"\xff\xd8\xff garbage"),
     "train/c003/0001.jpg (not an image PIL can read)"),
    ("jpeg truncated after its header", lambda root: truncate_after_header(root / "train/c000/0000.jpg"),
     "train/c000/0000.jpg: cannot decode this image (image file is truncated"),
]


@pytest.mark.parametrize("edit, expected", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_exits_2_with_one_line(tmp_path, edit, expected, capsys):
    root = write_imagenet_lt(tmp_path / "imagenet", [2, 2, 1, 2], [1] * 4)
    edit(root)
    argv = ["train", "imagenet-lt-ce-drw:smoke", "data.classes=4", "data.workers=0", "data.image_size=16",
            "data.resize=18", "--data-root", str(root), "--out", str(tmp_path / "run"), "--quiet"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert expected in err, err
