"""`tailsam sweep`: recipes x seeds in parallel processes, the mean/std table, reuse, resume, failures, bad input."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tailsam.cli import main
from tailsam.config import save_config
from tailsam.recipes import recipe_with_overrides

RECIPES = ["digits-ce", "digits-ce-sam"]
SEEDS = [0, 1]
# Two epochs: a couple of seconds per run (mostly importing torch), and seeds 0 and 1 already differ.
TINY = ["train.epochs=2"]
GROUPS = ("many", "medium", "few", "head", "mid", "tail")


def sweep_argv(out: Path, recipes=RECIPES, seeds=SEEDS, overrides=TINY, parallel=2) -> list[str]:
    return ["sweep", *recipes, "seeds=" + ",".join(map(str, seeds)), *overrides, "--out", str(out),
            "--parallel", str(parallel)]


def files_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One finished sweep of 2 recipes x 2 seeds, 2 processes at a time: (out, exit status, stdout)."""
    out = tmp_path_factory.mktemp("sweep") / "s"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(sweep_argv(out))
    return out, code, stdout.getvalue()


def test_table_is_mean_and_sample_std_of_the_runs(swept):
    out, code, stdout = swept
    assert code == 0, stdout
    summary = json.loads((out / "summary.json").read_text())
    table = (out / "summary.md").read_text()
    assert table.strip() in stdout
    distinct = False
    for recipe in RECIPES:
        finals = [json.loads((out / recipe / f"seed{s}" / "final.json").read_text()) for s in SEEDS]
        entry = summary["recipes"][recipe]
        assert entry["seeds"] == SEEDS
        for metric in ("top1", *GROUPS):
            values = [f["top1"] if metric == "top1" else f["group_accuracy"][metric] for f in finals]
            assert entry[metric]["per_seed"] == {str(s): v for s, v in zip(SEEDS, values)}
            assert entry[metric]["mean"] == pytest.approx(statistics.mean(values))
            assert entry[metric]["std"] == pytest.approx(statistics.stdev(values))   # ddof=1
            distinct |= len(set(values)) > 1
        top1 = [f["top1"] for f in finals]
        row = next(line for line in table.splitlines() if line.startswith(f"| {recipe} |"))
        assert f"{statistics.mean(top1):.2f} ± {statistics.stdev(top1):.2f}" in row
    assert distinct, "every seed gave the same accuracies: the std check above proves nothing"
    # One progress line per run, each run logging into its own directory, every run's seed its own.
    assert sum(line.startswith("[") for line in stdout.splitlines()) == len(RECIPES) * len(SEEDS)
    for recipe in RECIPES:
        for seed in SEEDS:
            run = out / recipe / f"seed{seed}"
            assert "epoch 2/2" in (run / "train.log").read_text()
            assert json.loads((run / "config.json").read_text())["train"]["seed"] == seed
            assert json.loads((run / "usage.json").read_text())["sessions"][0]["peak_rss_mib"] > 0
            # Two runs at a time share the cores out rather than each taking all of them.
            threads = os.environ.get("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // 2)))
            assert f"OMP_NUM_THREADS={threads} " in (run / "train.log").read_text()


def test_the_sweep_ends_with_its_report_page(swept):
    out, code, stdout = swept
    assert code == 0
    assert stdout.splitlines()[-1] == f"report: {out / 'report.html'}"
    page = (out / "report.html").read_text()
    for recipe in RECIPES:   # one headline row per recipe, its two seeds' mean ± std (tests/test_report.py)
        top1 = [json.loads((out / recipe / f"seed{s}" / "final.json").read_text())["top1"] for s in SEEDS]
        assert f'data-entry="{recipe}" data-metric="top1">{statistics.mean(top1):.2f}' in page


def test_rerun_reuses_finished_runs(swept, capsys):
    out, code, _ = swept
    assert code == 0
    before = files_state(out)
    summary = json.loads((out / "summary.json").read_text())
    assert main(sweep_argv(out)) == 0
    printed = capsys.readouterr().out
    progress = [line for line in printed.splitlines() if line.startswith("[")]
    assert len(progress) == len(RECIPES) * len(SEEDS) and all("finished earlier" in line for line in progress)
    after = files_state(out)
    rewritten = ("summary", "report.html")   # the sweep's own files are written again; no run's
    assert {k: v for k, v in after.items() if not k.startswith(rewritten)} == \
        {k: v for k, v in before.items() if not k.startswith(rewritten)}   # no run touched, no log line added
    assert json.loads((out / "summary.json").read_text())["recipes"] == summary["recipes"]


def test_a_run_without_final_json_is_relaunched_and_resumes_without_retraining(swept, capsys):
    out, code, _ = swept
    assert code == 0
    run = out / RECIPES[0] / "seed0"
    final = json.loads((run / "final.json").read_text())
    checkpoint = (run / "checkpoints" / "last.pt").stat().st_mtime_ns
    (run / "final.json").unlink()
    assert main(sweep_argv(out, recipes=RECIPES[:1], seeds=[0])) == 0
    assert "finished earlier" not in capsys.readouterr().out
    # The run went through `tailsam train` again, which found its last epoch done: nothing retrained.
    assert (run / "checkpoints" / "last.pt").stat().st_mtime_ns == checkpoint
    assert json.loads((run / "final.json").read_text())["top1"] == final["top1"]
    assert (run / "train.log").read_text().count("=== ") == 2
    assert len(json.loads((run / "usage.json").read_text())["sessions"]) == 2


def test_ctrl_c_saves_checkpoints_and_the_same_command_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "s"
    # 20 epochs, 2 s or more: the run cannot finish in the moment between the signal and its arrival.
    argv = sweep_argv(out, recipes=["digits-ce"], seeds=[0], overrides=["train.epochs=20"], parallel=1)
    log = out / "digits-ce" / "seed0" / "train.log"
    # One thread, as the suite's own process uses; the sweep passes a set OMP_NUM_THREADS on as it is.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    sweep = subprocess.Popen([sys.executable, "-m", "tailsam", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (log.is_file() and "epoch 2/20" in log.read_text()):
        assert sweep.poll() is None and time.monotonic() < deadline, "the run did not get to epoch 2"
        time.sleep(0.05)
    sweep.send_signal(signal.SIGINT)   # what Ctrl-C sends; the sweep passes it on to the run
    _, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, stderr
    assert "run the same command to resume" in stderr
    assert "saved" in log.read_text()
    assert not (out / "digits-ce" / "seed0" / "final.json").exists()
    assert json.loads((out / "summary.json").read_text())["unfinished"][0]["status"] == "interrupted"
    assert "OMP_NUM_THREADS=1 " in log.read_text()

    assert main(argv) == 0, capsys.readouterr().err
    second_session = log.read_text().split("=== ")[2]
    first_epoch = next(line for line in second_session.splitlines() if line.startswith("epoch "))
    assert not first_epoch.startswith("epoch 1/"), "the rerun started over instead of resuming"
    assert json.loads((out / "digits-ce" / "seed0" / "final.json").read_text())["epoch"] == 20


def test_a_failed_run_is_reported_and_the_others_finish(tmp_path, capsys):
    out = tmp_path / "s"
    # seed 1's directory holds this very run's config and a damaged checkpoint: resuming it fails.
    broken = out / "digits-ce" / "seed1"
    (broken / "checkpoints").mkdir(parents=True)
    save_config(recipe_with_overrides("digits-ce", TINY + ["train.seed=1"])[0], broken / "config.json")
    (broken / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    assert main(sweep_argv(out, recipes=["digits-ce"], seeds=[0, 1])) == 1
    captured = capsys.readouterr()
    assert "1 of 2 runs failed" in captured.err
    assert f"FAILED (exit 2), log {broken / 'train.log'}" in captured.out
    assert "not a readable tailsam checkpoint" in captured.out   # the run's own one-line error
    assert (out / "digits-ce" / "seed0" / "final.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == [{"recipe": "digits-ce", "seed": 1, "exit_code": 2, "log": str(broken / "train.log"),
                                  "error": summary["failed"][0]["error"]}]
    entry = summary["recipes"]["digits-ce"]
    assert (entry["seeds"], entry["missing_seeds"], entry["top1"]["std"]) == ([0], [1], None)
    assert str(broken / "train.log") in (out / "summary.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (["nope-recipe"], "unknown recipe 'nope-recipe'"),
    (["seeds=0,x"], "seeds=0,x is not a list of non-negative integers"),
    (["seeds=1,1"], "repeats a seed"),
    (["optim.lrr=1"], "optim.lrr"),
    (["optim.lr=fast"], "optim.lr must be a number"),
    (["train.seed=3"], "train.seed is what seeds= sets"),
    (["--parallel", "0"], "--parallel must be at least 1"),
], ids=["recipe", "seeds", "repeated-seed", "unknown-key", "bad-value", "train-seed", "parallel"])
def test_bad_input_exits_2_with_one_line_and_starts_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "s"
    assert main(["sweep", "digits-ce", *extra, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err
    assert not out.exists()


def test_a_changed_config_over_an_earlier_sweep_exits_2_and_touches_nothing(swept, capsys):
    out, code, _ = swept
    assert code == 0
    before = files_state(out)
    assert main(sweep_argv(out, overrides=["train.epochs=3"])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.epochs (2 there, 3 here)" in err
    assert files_state(out) == before


def test_runs_start_seed_by_seed_in_the_order_of_the_recipes(tmp_path):
    from tailsam.sweep import plan_sweep

    runs = plan_sweep(["digits-ce-sam", "digits-ce"], [0, 1], TINY, tmp_path / "s")
    assert [(run.recipe, run.seed) for run in runs] == [("digits-ce-sam", 0), ("digits-ce", 0),
                                                        ("digits-ce-sam", 1), ("digits-ce", 1)]
    assert [run.config.train.seed for run in runs] == [0, 0, 1, 1]
