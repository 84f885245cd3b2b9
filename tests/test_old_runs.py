"""Run directories written before the method plug-in (no "method" in config.json or the checkpoint,
the epoch's totals as [loss x images, correct, images]) still evaluate and resume, or are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tailsam.errors import UserError
from tailsam.run import evaluate_checkpoint
from tailsam.train import RunInterrupted, train
from test_train import assert_same_run, stop_at, tiny_config


def make_old(run: Path, *, epoch_totals: torch.Tensor) -> None:
    """Rewrite `run` in the format of tailsam before the method plug-in."""
    config = json.loads((run / "config.json").read_text())
    del config["method"]
    (run / "config.json").write_text(json.dumps(config, indent=1))
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    del state["method"]
    del state["config"]["method"]
    state["epoch_totals"] = epoch_totals
    torch.save(state, path)


def test_an_old_run_evaluates(tmp_path):
    train(tiny_config(), tmp_path / "run", verbose=False)
    before = evaluate_checkpoint(tmp_path / "run")[0].top1
    make_old(tmp_path / "run", epoch_totals=torch.zeros(3, dtype=torch.float64))
    assert evaluate_checkpoint(tmp_path / "run")[0].top1 == before


def test_an_old_run_stopped_between_epochs_resumes_exactly(tmp_path):
    reference = tmp_path / "reference"
    train(tiny_config(), reference, verbose=False)
    with pytest.raises(RunInterrupted):
        train(tiny_config(), tmp_path / "old", verbose=False, on_step=stop_at(2, 3))   # after epoch 2
    make_old(tmp_path / "old", epoch_totals=torch.zeros(3, dtype=torch.float64))
    train(tiny_config(), tmp_path / "old", verbose=False)
    assert_same_run(tmp_path / "old", reference)


def test_an_old_run_stopped_mid_epoch_is_refused_in_one_line(tmp_path):
    with pytest.raises(RunInterrupted):
        train(tiny_config(), tmp_path / "old", verbose=False, on_step=stop_at(3, 1))
    make_old(tmp_path / "old", epoch_totals=torch.tensor([4.2, 80.0, 256.0], dtype=torch.float64))
    kept = (tmp_path / "old" / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(UserError, match="middle of an epoch by an older tailsam"):
        train(tiny_config(), tmp_path / "old", verbose=False)
    assert (tmp_path / "old" / "checkpoints" / "last.pt").read_bytes() == kept


def test_renamed_config_keys_still_load():
    from tailsam.config import apply_overrides, config_from_dict

    old = tiny_config().to_dict()
    old["hessian"]["iters"] = old["hessian"].pop("steps") + 7   # a config.json from before the rename
    assert config_from_dict(old).hessian.steps == tiny_config().hessian.steps + 7
    assert apply_overrides(tiny_config(), ["hessian.iters=9"]).hessian.steps == 9
