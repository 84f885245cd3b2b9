"""The training loop: the run-directory contract, exact resume, SIGTERM, kill -9 and divergence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from tailsam.config import apply_overrides
from tailsam.errors import TailsamWarning
from tailsam.recipes import get_recipe
from tailsam.train import RunInterrupted, TrainingDiverged, train

TINY = ["train.epochs=4", "train.eval_every=2", "loss.drw_start=2", "optim.lr_args.decay_epochs=2,3",
        "data.ratio=20", "optim.batch_size=128"]


def tiny_config(recipe="digits-ldam-drw-sam", *extra):
    return apply_overrides(get_recipe(recipe), TINY + list(extra))


def weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    train(tiny_config(), out, verbose=False)
    return out


def test_run_directory_contract(reference_run):
    for name in ("config.json", "env.json", "data.json", "metrics.jsonl", "final.json", "checkpoints/last.pt"):
        assert (reference_run / name).is_file(), name
    data = json.loads((reference_run / "data.json").read_text())
    assert data["counts"][0] == 120 and data["counts"][-1] == 6 and len(data["indices_sha256"]) == 64
    lines = [json.loads(line) for line in (reference_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [2, 4]
    assert [r["drw"] for r in lines] == [False, True]          # DRW from the 3rd epoch (drw_start=2)
    assert lines[-1]["lr"] == pytest.approx(0.1 * 0.01 ** 2) and lines[-1]["rho"] == 0.2
    for key in ("many", "medium", "few", "head", "mid", "tail"):
        assert key in lines[-1]["test"]["group_accuracy"]
    final = json.loads((reference_run / "final.json").read_text())
    assert final["top1"] == lines[-1]["test"]["top1"] and final["epoch"] == 4
    assert final["best_epoch_on_test_set"]["epoch"] in (2, 4)   # labelled apart from the final figure
    state = torch.load(reference_run / "checkpoints" / "last.pt", weights_only=True)
    assert state["loader"]["epoch"] == 4 and state["loader"]["position"] == 0


def stop_at(epoch: int, step: int):
    def hook(e, s):
        if (e, s) == (epoch, step):
            signal.raise_signal(signal.SIGTERM)
    return hook


@pytest.mark.parametrize("epoch, step", [(2, 3), (3, 1)], ids=["after-epoch-2", "mid-epoch-3"])
def test_sigterm_then_resume_equals_uninterrupted(tmp_path, reference_run, epoch, step):
    # digits-LT ratio 20 has 4 batches of 128 per epoch: step 3 is an epoch's last.
    with pytest.raises(RunInterrupted) as stopped:
        train(tiny_config(), tmp_path, verbose=False, on_step=stop_at(epoch, step))
    assert stopped.value.exit_code == 128 + signal.SIGTERM
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert (state["loader"]["epoch"], state["loader"]["position"]) == ((2, 0) if step == 3 else (2, 2))
    assert not (tmp_path / "final.json").exists()
    first_session_s = state["wall_s"]
    final = train(tiny_config(), tmp_path, verbose=False)
    assert_same_run(tmp_path, reference_run)
    # Wall time adds up over sessions: the first one's (to its checkpoint) and this one's.
    assert final["loop_wall_s"] == pytest.approx(first_session_s + final["seconds_this_session"], abs=0.11)
    assert 0 < first_session_s


def test_resuming_under_other_versions_warns_and_under_the_same_does_not(tmp_path):
    for run, torchvision_version in ((tmp_path / "same", None), (tmp_path / "other", "0.0.1")):
        with pytest.raises(RunInterrupted):
            train(tiny_config(), run, verbose=False, on_step=stop_at(1, 3))
        if torchvision_version:
            env = json.loads((run / "env.json").read_text())
            (run / "env.json").write_text(json.dumps({**env, "torchvision": torchvision_version}))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(tiny_config(), run, verbose=False)
        versions = [str(w.message) for w in caught if issubclass(w.category, TailsamWarning)]
        if torchvision_version:
            assert len(versions) == 1 and "torchvision 0.0.1 -> " in versions[0], versions
        else:
            assert versions == []


def test_kill_9_loses_at_most_the_current_epoch(tmp_path):
    config = tiny_config("digits-ldam-drw-sam", "train.epochs=30", "train.eval_every=5")
    replay = tmp_path / "replay.json"
    replay.write_text(json.dumps(config.to_dict()))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "tailsam", "train", "--config", str(replay), "--out", str(out),
                             "--quiet"], stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    checkpoint = out / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not checkpoint.exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    survived = torch.load(checkpoint, weights_only=True)       # intact, never half-written
    assert survived["loader"]["position"] == 0 and 1 <= survived["loader"]["epoch"] < 30

    train(config, out, verbose=False)                          # the same command resumes from last.pt
    uninterrupted = tmp_path / "uninterrupted"
    train(config, uninterrupted, verbose=False)
    assert_same_run(out, uninterrupted)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import tailsam.run.build as build

    built = {}

    def build_and_keep(*args, **kwargs):
        built["model"] = model = build_and_keep.__wrapped__(*args, **kwargs)
        return model

    build_and_keep.__wrapped__ = build.build_network
    monkeypatch.setattr(build, "build_network", build_and_keep)

    def poison_in(poisoned_epoch):  # a weight turns NaN during that epoch
        def poison(epoch, step):
            if (epoch, step) == (poisoned_epoch, 0):
                next(built["model"].parameters()).data.fill_(float("nan"))
        return poison

    with pytest.raises(TrainingDiverged, match="epoch 2") as diverged:
        train(tiny_config(), tmp_path / "run", verbose=False, on_step=poison_in(2))
    assert f"{tmp_path / 'run' / 'checkpoints' / 'last.pt'} still holds the last state saved" in str(diverged.value)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["loader"]["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    # In the first epoch there is no checkpoint yet, and the message says so rather than promise one.
    with pytest.raises(TrainingDiverged, match="no checkpoint was saved before it"):
        train(tiny_config(), tmp_path / "first", verbose=False, on_step=poison_in(1))
    assert not (tmp_path / "first" / "checkpoints" / "last.pt").exists()


def test_demo_trains_both_runs_and_prints_them_side_by_side(tmp_path, capsys):
    from tailsam.cli import main

    assert main(["demo", "--out", str(tmp_path)]) == 0
    report = capsys.readouterr().out
    assert "LDAM+DRW" in report and "LDAM+DRW+SAM" in report
    for row in ("overall", "many", "medium", "few", "head", "mid", "tail", "class 9"):
        assert row in report
    for recipe in ("digits-ldam-drw", "digits-ldam-drw-sam"):
        final = json.loads((tmp_path / recipe / "final.json").read_text())
        assert f"{final['top1']:.2f}" in report
        page = (tmp_path / "report.html").read_text()   # the two runs side by side, under the demo's names
        assert f'data-entry="{"LDAM+DRW+SAM" if recipe.endswith("sam") else "LDAM+DRW"}" data-metric="top1">' \
               f"{final['top1']:.2f}<" in page
    # The demo ends by pointing at its page, and the runs tracked their spectra for it while training.
    assert report.splitlines()[-1] == str(tmp_path / "report.html")
    assert 'id="tracked"' in page and 'id="ratio"' in page


def test_resume_may_move_the_data_root_but_not_change_the_recipe(tmp_path, reference_run):
    moved = apply_overrides(tiny_config(), [f"data.root={tmp_path}"])   # digits need no root: any folder works
    with pytest.raises(RunInterrupted):
        train(moved, tmp_path / "run", verbose=False, on_step=stop_at(1, 3))
    train(tiny_config(), tmp_path / "run", verbose=False)
    assert_same_run(tmp_path / "run", reference_run)
