"""Mistakes a user can make: each exits with status 2, prints one line, and leaves existing run files alone."""

from __future__ import annotations

import hashlib
import urllib.error
from pathlib import Path

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
     "unknown loss 'hinge'"),
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
    assert not (tmp_path / "o" / "checkpoints" / "last.pt").exists()


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
