"""Mistakes a user can make: each exits with status 2, prints one line, and leaves existing run files alone."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from tailsam.cli import main

TINY = ["train.epochs=1", "data.ratio=20"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "digits-ce", *TINY, "--out", str(out), "--quiet"]) == 0
    return out


def snapshot(folder: Path) -> dict[str, str]:
    """Every file's hash, but .lock's: it names whoever took the run last (pid, host, time), not a result."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def copy_run(run: Path, dest: Path) -> Path:
    for path in run.rglob("*"):
        if path.is_file():
            target = dest / path.relative_to(run)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return dest


def edited_checkpoint(run: Path, dest: Path, edit) -> Path:
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    edit(state)
    torch.save(state, dest)
    return dest


def no_network(*args, **kwargs):
    raise urllib.error.URLError("no network")


# Each case: (name, function(tmp_path, finished_run) -> argv, text the message must contain).
CASES = [
    ("unknown recipe", lambda t, r: ["train", "nope", "--out", str(t / "o")], "unknown recipe 'nope'"),
    ("unknown variant", lambda t, r: ["train", "digits-ce:tiny", "--out", str(t / "o")], "variant"),
    ("unknown key", lambda t, r: ["train", "digits-ce", "optim.lrr=1", "--out", str(t / "o")], "optim.lrr"),
    ("unknown section", lambda t, r: ["train", "digits-ce", "nosuch.key=1", "--out", str(t / "o")], "nosuch"),
    ("override without =", lambda t, r: ["train", "digits-ce", "optim.lr", "--out", str(t / "o")],
     "section.key=value"),
    ("wrong type", lambda t, r: ["train", "digits-ce", "optim.lr=fast", "--out", str(t / "o")],
     "optim.lr must be a number"),
    ("integer expected", lambda t, r: ["train", "digits-ce", "train.epochs=2.5", "--out", str(t / "o")],
     "train.epochs must be an integer"),
    ("negative rho", lambda t, r: ["train", "digits-ce-sam", "sam.rho=-0.1", "--out", str(t / "o")],
     "sam.rho must be >= 0"),
    ("ratio below one", lambda t, r: ["train", "digits-ce", "data.ratio=0.5", "--out", str(t / "o")],
     "data.ratio must be >= 1"),
    ("unknown loss", lambda t, r: ["train", "digits-ce", "loss.name=hinge", *TINY, "--out", str(t / "o")],
     "loss.name must be one of balanced_softmax, ce, focal, la, ldam, vs, got 'hinge'"),
    ("unknown model", lambda t, r: ["train", "digits-ce", "model.name=resnet9", "--out", str(t / "o")],
     "model.name must be one of"),
    ("unknown method", lambda t, r: ["train", "digits-ce", "method.name=nosuch", *TINY, "--out", str(t / "o")],
     "unknown method 'nosuch'; choose one of: cc-sam, focal-sam, glmc, imbsam, paco, plain, sse-sam"),
    ("unknown loss hyper-parameter", lambda t, r: ["train", "digits-ldam-drw", "loss.hparams.margin=1", *TINY,
                                                   "--out", str(t / "o")], "no hyper-parameter margin"),
    ("data missing, no network", lambda t, r: ["train", "cifar10-ce:smoke", "--data-root", str(t / "empty"),
                                               "--out", str(t / "o")], "cifar-10-python.tar.gz"),
    ("--out is a file", lambda t, r: ["train", "digits-ce", "--out", str(r / "final.json")], "is a file"),
    ("recipe and --config", lambda t, r: ["train", "digits-ce", "--config", str(r / "config.json"),
                                          "--out", str(t / "o")], "not both"),
    ("unreadable --config", lambda t, r: ["train", "--config", str(r / "checkpoints" / "last.pt"),
                                          "--out", str(t / "o")],
     "cannot read the config"),
    ("resume with other settings", lambda t, r: ["train", "digits-ce", *TINY, "optim.lr=0.05",
                                                 "--out", str(r)], "optim.lr"),
    ("eval of a missing path", lambda t, r: ["eval", str(t / "nothing.pt")], "no such checkpoint"),
    ("eval of a non-checkpoint", lambda t, r: ["eval", str(r / "config.json")], "not a readable tailsam checkpoint"),
    ("checkpoint of another architecture", lambda t, r: ["eval", str(edited_checkpoint(
        r, t / "arch.pt", lambda s: s["config"]["model"].update(name="resnet20")))], "another architecture"),
    ("checkpoint of another class count", lambda t, r: ["eval", str(edited_checkpoint(
        r, t / "classes.pt", lambda s: s["model"].update({k: v[:5] for k, v in s["model"].items()
                                                          if k.startswith("head.")})))], "class count"),
]


@pytest.mark.parametrize("make_argv, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_mistake_exits_2_with_one_line(tmp_path, finished_run, make_argv, expected, capsys, monkeypatch):
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    (tmp_path / "empty").mkdir()
    before = snapshot(finished_run)
    argv = make_argv(tmp_path, finished_run)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert expected in err, err
    assert snapshot(finished_run) == before, "existing run files changed"
    assert not (tmp_path / "o").exists()   # a refused new run leaves no folder (not even its lock file)


def test_truncated_checkpoint_exits_2_and_is_left_as_it_was(tmp_path, finished_run, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "final.json").unlink()   # an unfinished run, so the command resumes from the checkpoint
    checkpoint = run / "checkpoints" / "last.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    before = snapshot(run)
    assert main(["train", "digits-ce", *TINY, "--out", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "truncated" in err
    assert snapshot(run) == before


def test_argparse_mistakes_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "digits-ce"])   # --out missing
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err


# --- damaged runs and data: exit 2, one line, and the run's files exactly as they were -----------------

def unfinished(run: Path) -> Path:
    """The run without final.json: the same command resumes it (from its last checkpoint)."""
    (run / "final.json").unlink()
    return run


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def edit_checkpoint_in_place(run: Path, edit) -> Path:
    edited_checkpoint(run, run / "checkpoints" / "last.pt", edit)
    return run


def lock_not_writable(run: Path) -> Path:
    (run / ".lock").unlink()
    (run / ".lock").mkdir()   # opening it for writing fails as a read-only folder would (root ignores chmod)
    return run


# Each case: (name, damage(copy of the finished run) -> the run to give, argv after the run, expected text).
DAMAGED = [
    ("garbage line in metrics.jsonl", lambda r: write_text(
        unfinished(r) / "metrics.jsonl", "garbage\n" + (r / "metrics.jsonl").read_text()).parent,
     ["train", "digits-ce", *TINY], "line 1 is not a metrics record"),
    ("metrics.jsonl deleted", lambda r: (unfinished(r) / "metrics.jsonl").unlink() or r,
     ["train", "digits-ce", *TINY], "metrics.jsonl is missing"),
    ("checkpoint without its optimizer", lambda r: edit_checkpoint_in_place(
        unfinished(r), lambda s: s.pop("optimizer")), ["train", "digits-ce", *TINY], "not a training checkpoint "
     "(no optimizer)"),
    ("run directory not writable", lambda r: lock_not_writable(unfinished(r)), ["train", "digits-ce", *TINY],
     "cannot write in the run directory"),
    ("eval on an unknown device", lambda r: r, ["eval", "--device", "tpu9"], "unknown device 'tpu9'"),
    ("hessian with more steps than parameters", lambda r: r, ["hessian", "--steps", "100000", "--out", "{tmp}/h"],
     "is more than the model's 75002 parameters"),
    ("hessian results folder not writable", lambda r: r, ["hessian", "--out", "/proc/tailsam-results"],
     "cannot write the results into /proc/tailsam-results"),
    ("hessian of NaN weights", lambda r: edit_checkpoint_in_place(r, lambda s: s["model"]["head.weight"].fill_(
        float("nan"))), ["hessian", "--out", "{tmp}/h"], "hold NaN or inf"),
]


def _argv(run: Path, rest: list[str], tmp_path: Path) -> list[str]:
    rest = [item.replace("{tmp}", str(tmp_path)) for item in rest]
    return [*rest, "--out", str(run), "--quiet"] if rest[0] == "train" else [rest[0], str(run), *rest[1:]]


@pytest.mark.parametrize("damage, rest, expected", [c[1:] for c in DAMAGED], ids=[c[0] for c in DAMAGED])
def test_damaged_run_exits_2_with_one_line_and_keeps_its_files(tmp_path, finished_run, damage, rest, expected,
                                                                capsys):
    run = damage(copy_run(finished_run, tmp_path / "run"))
    before = snapshot(run)
    capsys.readouterr()
    assert main(_argv(run, rest, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert expected in err, err
    assert snapshot(run) == before
    assert not (tmp_path / "h").exists()   # refused before any analysis was written


def test_a_torn_last_metrics_line_is_redone_on_resume(tmp_path, finished_run):
    run = unfinished(copy_run(finished_run, tmp_path / "run"))
    good = (run / "metrics.jsonl").read_text()
    write_text(run / "metrics.jsonl", good + '{"epoch": 2, "train_lo')   # died while appending
    assert main(["train", "digits-ce", *TINY, "--out", str(run), "--quiet"]) == 0
    assert (run / "metrics.jsonl").read_text() == good
    assert json.loads((run / "final.json").read_text())["epoch"] == 1


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    saved = []
    real_save = torch.save

    def fill_up_on_the_second_save(obj, f, *args, **kwargs):
        if saved:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        saved.append(obj["loader"]["epoch"])
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fill_up_on_the_second_save)
    out = tmp_path / "run"
    assert main(["train", "digits-ce", "train.epochs=2", "data.ratio=20", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(No space left on device); the previous last.pt is kept" in err, err
    monkeypatch.setattr(torch, "save", real_save)
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert saved == [1] and state["loader"]["epoch"] == 1
    assert not [p for p in (out / "checkpoints").iterdir() if p.name != "last.pt"]   # no temporary file left
    assert main(["train", "digits-ce", "train.epochs=2", "data.ratio=20", "--out", str(out), "--quiet"]) == 0


def test_a_malicious_pickle_is_refused_everywhere_without_running_it(tmp_path, finished_run, capsys):
    run = unfinished(copy_run(finished_run, tmp_path / "run"))
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    torch.save({**state, "best": Payload()}, run / "checkpoints" / "last.pt")
    before = snapshot(run)
    for argv in (["eval", str(run)], ["hessian", str(run), "--out", str(tmp_path / "h")],
                 ["train", "digits-ce", *TINY, "--out", str(run), "--quiet"]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "holds a Python object (posix.system)" in err, err
        assert "weights_only" not in err and "succeed" not in err
    assert not marker.exists() and snapshot(run) == before


def test_nan_weights_in_eval_are_a_warning_not_silence(tmp_path, finished_run, capsys):
    run = edit_checkpoint_in_place(copy_run(finished_run, tmp_path / "run"),
                                   lambda s: s["model"]["head.weight"].fill_(float("nan")))
    assert main(["eval", str(run)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tailsam: warning: ") and "NaN or inf" in err, err


def test_a_loss_that_grows_a_thousandfold_is_reported(tmp_path, capsys):
    assert main(["train", "digits-ce-sam", "sam.rho=1e6", "train.epochs=2", "data.ratio=20",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tailsam: warning:")]
    assert warnings and "more than 1000x the first step's" in warnings[0]


def test_ctrl_c_before_the_command_starts_is_one_line(monkeypatch, capsys):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("tailsam.cli.build_parser", interrupted)   # as if while torch was importing
    assert main(["eval", "x"]) == 130
    assert capsys.readouterr().err == "tailsam: interrupted\n"


def write_cifar_npz(root: Path, *, test_classes: int = 10) -> Path:
    rng = np.random.RandomState(0)
    root.mkdir(parents=True, exist_ok=True)
    y_test = np.repeat(np.arange(test_classes), 2)
    np.savez(root / "cifar10.npz", x_train=rng.randint(0, 256, (200, 32, 32, 3)).astype(np.uint8),
             y_train=np.repeat(np.arange(10), 20), x_test=rng.randint(0, 256, (len(y_test), 32, 32, 3)).astype(
                 np.uint8), y_test=y_test)
    return root / "cifar10.npz"


CIFAR_TINY = ["data.n_max=20", "data.ratio=10", "model.name=resnet8", "train.epochs=1"]


@pytest.mark.parametrize("prepare, expected", [
    (lambda npz: npz.write_bytes(b""), "not a readable .npz file"),
    (lambda npz: npz.write_bytes(write_cifar_npz(npz.parent).read_bytes()[:5000]), "not a readable .npz file"),
    (lambda npz: write_cifar_npz(npz.parent, test_classes=9), "test set has no images of class 9"),
], ids=["empty npz", "truncated npz", "test set missing a class"])
def test_bad_data_files_exit_2_with_one_line(tmp_path, prepare, expected, capsys):
    (tmp_path / "data").mkdir()
    prepare(tmp_path / "data" / "cifar10.npz")
    assert main(["train", "cifar10-ce", *CIFAR_TINY, "--data-root", str(tmp_path / "data"),
                 "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


def test_a_data_root_that_is_a_file_and_a_ratio_leaving_empty_classes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TAILSAM_DATA_ROOT", str(write_text(tmp_path / "file", "")))
    assert main(["train", "cifar10-ce", *CIFAR_TINY, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "is a file; point --data-root or $TAILSAM_DATA_ROOT at the folder" in capsys.readouterr().err
    assert main(["data", "--dataset", "digits", "--ratio", "1e9"]) == 2
    assert "leaves class 3 with no training images" in capsys.readouterr().err
    assert main(["data", "--dataset", "digits", "--ratio", "10", "--root", str(tmp_path), "--json"]) == 0  # old name
    assert json.loads(capsys.readouterr().out)["counts"][-1] == 12
