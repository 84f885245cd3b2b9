"""`tailsam hessian`, the per-class driver, the training option and the faster products under them.

Runs are tiny digits runs trained in-process; every number the command
writes is checked against a direct `class_spectrum` call on the same model
and images.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tailsam.cli import main
from tailsam.config import apply_overrides
from tailsam.data import dataset_info, load_dataset, select_longtail
from tailsam.errors import ConfigError
from tailsam.hessian import LossHessian, affine_batchnorm, analyze, class_spectrum, spread_classes
from tailsam.losses import build_loss
from tailsam.models import build_model
from tailsam.recipes import get_recipe
from tailsam.run import analyze_checkpoint
from tailsam.train import RunInterrupted, train

# As tests/test_train.py: 4 epochs, 4 batches each, DRW from the 3rd; the analysis after epochs 2 and 4
# with the run's own loss, so the logged spectra see the DRW weights switch on.
TINY = ["train.epochs=4", "train.eval_every=2", "loss.drw_start=2", "optim.lr_args.decay_epochs=2,3",
        "data.ratio=20", "optim.batch_size=128"]
WITH_HESSIAN = ["hessian.every=2", "hessian.steps=6", "hessian.max_images=16", "hessian.loss=run"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_config(*extra):
    return apply_overrides(get_recipe("digits-ldam-drw"), TINY + list(extra))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(tiny_config(*WITH_HESSIAN), out, verbose=False)
    return out


def digits_split(run: Path):
    """The run's model (eval mode) and its training split, normalised, built without tailsam.train."""
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    model = build_model("resnet8", 10, head="normed", in_channels=1)
    model.load_state_dict(state["model"])
    data = load_dataset("digits")
    split = select_longtail(data.y_train, 10, ratio=20, seed=0)
    info = dataset_info("digits")
    x = torch.from_numpy(data.x_train[split.indices]).float().div(255).permute(0, 3, 1, 2)
    x = (x - torch.tensor(info.mean).view(1, -1, 1, 1)) / torch.tensor(info.std).view(1, -1, 1, 1)
    return model, x.contiguous(), torch.from_numpy(data.y_train[split.indices]), list(split.counts)


# --- the command ---------------------------------------------------------------------------------

def test_results_json_matches_a_direct_class_spectrum_call(run, capsys):
    out = run / "h-json"
    assert main(["hessian", str(run), "--classes", "9", "0", "--steps", "8", "--max-images", "40",
                 "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    results = json.loads((out / "results.json").read_text())
    assert printed["classes"] == results["classes"]
    assert (results["split"], results["loss"], results["steps"], results["augment"]) == ("train", "run", 8, False)
    assert results["loss_function"] == "the run's own: ldam, DRW as at the checkpoint's epoch"
    assert results["epoch"] == 4 and results["train_counts"][0] == 120 and results["train_counts"][9] == 6

    model, x, y, counts = digits_split(run)
    assert results["train_counts"] == counts
    # The run's own loss by default; its DRW weights cancel on one class's images (the test below).
    ldam = build_loss("ldam", counts, **get_recipe("digits-ldam-drw").loss.hparams)
    assert [r["class_id"] for r in results["classes"]] == [9, 0]       # in the order asked for
    for record in results["classes"]:
        direct = class_spectrum(model, ldam, x, y, record["class_id"], steps=8, max_images=40)
        assert record["train_count"] == counts[record["class_id"]]
        assert record["indices"] == list(direct.indices) and record["n_images"] == min(40, record["train_count"])
        for key in ("loss", "accuracy", "lambda_max", "lambda_min", "eigenvalue_ratio", "negative_mass", "trace"):
            assert record[key] == pytest.approx(getattr(direct, key), rel=1e-5, abs=1e-7), key
        assert record["dim"] == sum(p.numel() for p in model.parameters())
        assert record["lanczos_steps"] == [8]
        assert len(record["density"]["nodes"][0]) == len(record["density"]["weights"][0]) == 8

    for name in ("densities.png", "ratio_vs_count.png"):
        png = (out / name).read_bytes()
        assert png.startswith(PNG_SIGNATURE) and len(png) > 5000, name
    assert printed["files"]["densities"] == str(out / "densities.png")


def test_table_and_plot_paths_without_json(run, capsys):
    checkpoint = run / "checkpoints" / "last.pt"
    assert main(["hessian", str(checkpoint), "--classes", "4", "--steps", "3", "--split", "test"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == "loss: the run's own: ldam, DRW as at the checkpoint's epoch (test split)"
    assert lines[1].split()[:4] == ["class", "train", "images", "loss"]
    assert lines[2].split()[:3] == ["4", "31", "50"]                  # 31 training images, 50 test images
    # A checkpoint inside a run directory writes to RUN/hessian, as the run directory does.
    for name in ("densities.png", "ratio_vs_count.png", "results.json"):
        assert f"{run / 'hessian' / name}" in printed
        assert (run / "hessian" / name).is_file()
    earlier = (run / "hessian" / "results.json").read_bytes()
    capsys.readouterr()
    assert main(["hessian", str(checkpoint), "--classes", "4", "--steps", "3", "--loss", "ce"]) == 2
    assert "holds an earlier analysis" in capsys.readouterr().err
    assert main(["hessian", str(checkpoint), "--steps", "3", "--out", str(run / "config.json")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    assert (run / "hessian" / "results.json").read_bytes() == earlier   # refused before any work
    assert main(["hessian", str(checkpoint), "--classes", "4", "--steps", "3", "--loss", "ce", "--json",
                 "--force"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["loss_function"] == "cross-entropy on the logits (unscaled cosines of the normed head)"
    model, x, y, _ = digits_split(run)
    direct = class_spectrum(model, F.cross_entropy, x, y, 4, steps=3)
    assert printed["classes"][0]["lambda_max"] == pytest.approx(direct.lambda_max, rel=1e-5)


def test_run_loss_per_class_ignores_the_drw_weights_and_augment_is_seeded(run):
    model, x, y, counts = digits_split(run)
    ldam = analyze_checkpoint(run, classes=[9], loss="run", steps=3, device="cpu").spectra[0]
    with torch.no_grad():
        logits = model.eval()(x[y == 9])
    # The checkpoint trained its last epoch with DRW weights on; on one class's images they cancel.
    unweighted = build_loss("ldam", counts, **get_recipe("digits-ldam-drw").loss.hparams)
    assert ldam.loss == pytest.approx(float(unweighted(logits, y[y == 9])), rel=1e-5)

    plain = analyze_checkpoint(run, classes=[9], steps=3, device="cpu").spectra[0]
    augmented = [analyze_checkpoint(run, classes=[9], steps=3, augment=True, seed=s, device="cpu").spectra[0]
                 for s in (1, 1, 2)]
    assert augmented[0].loss == augmented[1].loss and augmented[0].lambda_max == augmented[1].lambda_max
    assert len({plain.loss, augmented[0].loss, augmented[2].loss}) == 3


# --- the training option -------------------------------------------------------------------------

def test_training_option_logs_spectra_without_changing_the_training(run, tmp_path):
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [2, 4]
    for line in lines:
        logged = line["hessian"]
        assert [r["class_id"] for r in logged] == [0, 4, 9]                 # head, middle, tail
        assert [r["n_images"] for r in logged] == [16, 16, 6]
        assert all(r["lanczos_steps"] == [6] and "density" not in r and "indices" not in r for r in logged)
        assert all(r["lambda_min"] <= r["lambda_max"] for r in logged)
    # The analysis neither moves the weights nor draws from the training random numbers.
    plain = tmp_path / "plain"
    train(tiny_config(), plain, verbose=False)
    with_hessian = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    without = torch.load(plain / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(with_hessian[k], without[k]) for k in without)


def test_sigterm_then_resume_with_the_analysis_on_equals_uninterrupted(run, tmp_path):
    def stop_mid_epoch_3(epoch, step):
        if (epoch, step) == (3, 1):
            signal.raise_signal(signal.SIGTERM)

    with pytest.raises(RunInterrupted):
        train(tiny_config(*WITH_HESSIAN), tmp_path, verbose=False, on_step=stop_mid_epoch_3)
    train(tiny_config(*WITH_HESSIAN), tmp_path, verbose=False)
    assert (tmp_path / "metrics.jsonl").read_bytes() == (run / "metrics.jsonl").read_bytes()
    resumed = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["model"]
    uninterrupted = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


# --- mistakes --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_missing_a_test_class(tmp_path_factory) -> Path:
    """A CIFAR-format run whose test set lost its images of class 9 after training (training refuses such data)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.RandomState(0)
    x_train, y_train = rng.randint(0, 256, (200, 32, 32, 3)).astype(np.uint8), np.repeat(np.arange(10), 20)
    x_test, y_test = rng.randint(0, 256, (20, 32, 32, 3)).astype(np.uint8), np.repeat(np.arange(10), 2)
    np.savez(root / "cifar10.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    out = tmp_path_factory.mktemp("cifar-run")
    config = apply_overrides(get_recipe("cifar10-ce"), [f"data.root={root}", "data.n_max=20", "data.ratio=10",
                                                        "model.name=resnet8", "train.epochs=1", "optim.batch_size=64"])
    train(config, out, verbose=False)
    np.savez(root / "cifar10.npz", x_train=x_train, y_train=y_train, x_test=x_test[:18], y_test=y_test[:18])
    return out


def without_class_counts(run: Path, tmp_path: Path) -> Path:
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    del state["class_counts"]
    torch.save(state, tmp_path / "old.pt")
    return tmp_path / "old.pt"


# Each case: (name, function(tmp_path, run, run_missing_a_test_class) -> argv, text the message must contain).
MISTAKES = [
    ("unknown class", lambda t, r, c: ["hessian", str(r), "--classes", "0", "10"], "class 10 is not a class"),
    ("negative class", lambda t, r, c: ["hessian", str(r), "--classes", "-1"], "class -1 is not a class"),
    ("no class counts", lambda t, r, c: ["hessian", str(without_class_counts(r, t))], "holds no class counts"),
    ("one Lanczos step", lambda t, r, c: ["hessian", str(r), "--steps", "1"], "steps must be at least 2"),
    ("no runs", lambda t, r, c: ["hessian", str(r), "--runs", "0"], "runs must be at least 1"),
    ("no images asked for", lambda t, r, c: ["hessian", str(r), "--max-images", "0"], "max_images must be at least 1"),
    ("class absent from the split", lambda t, r, c: ["hessian", str(c), "--split", "test", "--classes", "3", "9"],
     "the cifar10 test set has no images of class 9"),
    ("not a checkpoint", lambda t, r, c: ["hessian", str(r / "config.json")], "not a readable tailsam checkpoint"),
    ("unknown split", lambda t, r, c: ["hessian", str(r), "--split", "val"], "invalid choice: 'val'"),
]


@pytest.mark.parametrize("make_argv, expected", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_mistakes_exit_2_with_one_line_and_write_nothing(tmp_path, run, run_missing_a_test_class, make_argv,
                                                         expected, capsys):
    argv = make_argv(tmp_path, run, run_missing_a_test_class)
    capsys.readouterr()
    code = None
    try:
        code = main(argv + ["--out", str(tmp_path / "out")])
    except SystemExit as exit_:       # argparse's own mistakes
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert expected in err, err
    assert not (tmp_path / "out").exists()


# --- the library under the command ---------------------------------------------------------------

def test_spread_classes_runs_from_head_to_tail():
    cifar10_lt = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert spread_classes(cifar10_lt, 3) == [0, 4, 9]
    assert spread_classes(cifar10_lt, 1) == [0]
    assert spread_classes(cifar10_lt, 20) == list(range(10))
    assert spread_classes([5, 50, 20, 50], 2) == [1, 0]                 # ties: the lower class id ranks first
    with pytest.raises(ConfigError, match="at least 1"):
        spread_classes(cifar10_lt, 0)


def test_analyze_checks_every_class_before_any_product():
    model = nn.Linear(3, 4)
    x, y = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ConfigError, match="class 3 has no images in the given labels"):
        analyze(model, x, y, [5, 4, 3, 2], classes=[0, 3])
    spectra = analyze(model, x, y, [5, 4, 3, 2], classes=[2, 0, 2], steps=4)
    assert [s.class_id for s in spectra] == [2, 0]


def bn_cnn(dtype=torch.float64) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(27, 3))
    model[1].running_mean.copy_(torch.tensor([0.2, -0.1, 0.4]))
    model[1].running_var.copy_(torch.tensor([0.5, 2.0, 1.3]))
    return model.to(dtype)


@pytest.mark.parametrize("chunk_size", [64, 4], ids=["one_chunk", "chunked"])
def test_kept_graph_and_affine_batchnorm_give_the_same_products(chunk_size):
    model = bn_cnn()
    x, y = torch.randn(10, 1, 5, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    vectors = torch.randn(3, sum(p.numel() for p in model.parameters()), dtype=torch.float64)
    kept = LossHessian(model, F.cross_entropy, x, y, chunk_size=chunk_size, keep_graph=True)
    fresh = LossHessian(model, F.cross_entropy, x, y, chunk_size=chunk_size, keep_graph=False)
    assert LossHessian(model, F.cross_entropy, x, y, chunk_size=chunk_size).keep_graph == (chunk_size >= 10)
    # The reference: autograd's own eval-mode batch norm, no substitution, no kept graph.
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())

    def loss(*flat):
        named = {name: piece for name, piece in zip(params, flat)}
        return F.cross_entropy(torch.func.functional_call(model.eval(), (named, buffers), (x,)), y)

    for v in vectors:
        pieces = v.split([p.numel() for p in params.values()])
        tangents = tuple(piece.view_as(p) for piece, p in zip(pieces, params.values()))
        _, reference = torch.autograd.functional.hvp(loss, tuple(p.detach() for p in params.values()), tangents)
        reference = torch.cat([r.reshape(-1) for r in reference])
        assert torch.allclose(kept(v), reference, rtol=1e-10, atol=1e-12)
        assert torch.allclose(fresh(v), reference, rtol=1e-10, atol=1e-12)


def test_affine_batchnorm_restores_the_layers_and_skips_batch_statistics():
    model = bn_cnn(torch.float32)
    model.add_module("no_stats", nn.BatchNorm1d(3, track_running_stats=False))
    model.eval()
    x = torch.randn(4, 1, 5, 5)
    expected = model(x)
    with affine_batchnorm(model):
        assert "forward" in vars(model[1]) and "forward" not in vars(model.no_stats)
        assert torch.allclose(model(x), expected, rtol=1e-6, atol=1e-6)
    assert "forward" not in vars(model[1])
    with pytest.raises(ConfigError, match="keep_graph"):
        LossHessian(model, F.cross_entropy, x, torch.zeros(4, dtype=torch.long), method="forward_over_reverse",
                    keep_graph=True)
