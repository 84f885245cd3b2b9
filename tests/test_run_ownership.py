"""A run directory belongs to one run: a lock while training, no writing into other folders, no retraining."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from test_cli_errors import TINY, copy_run, finished_run, snapshot  # noqa: F401  (finished_run: a fixture)
from tailsam.cli import main


def test_a_second_process_on_the_same_out_is_refused_and_the_first_finishes_intact(tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "tailsam", "train", "digits-ce", "train.epochs=30", "train.eval_every=1",
         "data.ratio=20", "--out", str(out), "--quiet"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "config.json").is_file():   # the first process holds the lock from before this file
            assert first.poll() is None and time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.05)
        assert main(["train", "digits-ce", "train.epochs=30", "train.eval_every=1", "data.ratio=20",
                     "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"is in use by tailsam pid {first.pid} on " in err, err
        assert first.poll() is None, "the refused command must not have disturbed the first run"
    finally:
        _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 31))                       # every epoch logged once, in order
    assert json.loads((out / "final.json").read_text())["epoch"] == 30


def test_the_lock_is_released_when_its_holder_dies(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from tailsam.run.directory import RunDir; "
                               "lock = RunDir(sys.argv[1]).lock(); print('locked', flush=True); time.sleep(60)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    assert main(["train", "digits-ce", *TINY, "--out", str(out), "--quiet"]) == 2
    holder.kill()
    holder.wait()
    assert main(["train", "digits-ce", *TINY, "--out", str(out), "--quiet"]) == 0   # kill -9 leaves no stale lock


def test_a_folder_that_is_not_a_run_is_refused_and_left_alone(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert main(["train", "digits-ce", *TINY, "--out", str(folder), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not empty and not a tailsam run (it holds notes.txt)" in err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]   # not even a lock file


def test_a_finished_run_given_again_is_complete_and_unchanged(finished_run, capsys):
    before = snapshot(finished_run)
    capsys.readouterr()
    assert main(["train", "digits-ce", *TINY, "--out", str(finished_run)]) == 0
    captured = capsys.readouterr()
    assert "is a complete run" in captured.err and "final top-1" in captured.out
    assert snapshot(finished_run) == before


def test_a_finished_run_without_its_checkpoint_is_refused(tmp_path, finished_run, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "checkpoints" / "last.pt").unlink()
    before = snapshot(run)
    assert main(["train", "digits-ce", *TINY, "--out", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a finished run (final.json) whose" in err
    assert snapshot(run) == before


def test_an_empty_out_is_refused(capsys):
    assert main(["train", "digits-ce", *TINY, "--out", "", "--quiet"]) == 2
    assert "--out is empty" in capsys.readouterr().err
    assert not Path("config.json").exists()


def test_another_programs_config_json_does_not_make_a_folder_a_run(tmp_path, capsys):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.json").write_text('{"their": "settings"}')
    (folder / "main.py").write_text("print()")
    assert main(["train", "digits-ce", *TINY, "--out", str(folder), "--quiet"]) == 2
    assert "is not empty and not a tailsam run (it holds main.py)" in capsys.readouterr().err
    assert (folder / "config.json").read_text() == '{"their": "settings"}'


def test_a_damaged_final_json_is_written_again_from_the_last_checkpoint(tmp_path, finished_run):
    run = copy_run(finished_run, tmp_path / "run")
    good = json.loads((run / "final.json").read_text())
    (run / "final.json").write_text('{"epoch": 1, "to')
    assert main(["train", "digits-ce", *TINY, "--out", str(run), "--quiet"]) == 0
    assert json.loads((run / "final.json").read_text())["top1"] == good["top1"]


def test_analysis_settings_that_training_never_used_do_not_block_a_resume(tmp_path, finished_run):
    """Runs made when hessian.loss defaulted to "ce" resume under today's default, with hessian.every=0."""
    run = copy_run(finished_run, tmp_path / "run")
    (run / "final.json").unlink()
    config = json.loads((run / "config.json").read_text())
    assert config["hessian"]["every"] == 0
    config["hessian"]["loss"] = "ce"
    (run / "config.json").write_text(json.dumps(config))
    assert main(["train", "digits-ce", *TINY, "--out", str(run), "--quiet"]) == 0
