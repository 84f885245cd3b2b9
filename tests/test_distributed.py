"""Data-parallel training under torchrun: 2 gloo processes on the CPU against one process.

Exactness needs a model without BatchNorm (SyncBatchNorm has no CPU version,
and plain BatchNorm normalises each process's piece by itself): the runs use
tests/ddp_worker.py's "tiny-convnet". The kill/resume test uses ResNet-8 with
BatchNorm, since it compares two 2-process runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ddp_worker  # registers tiny-convnet in this process too
from jpeg_fixture import write_imagenet_lt
from tailsam.cli import main as tailsam_main
from tailsam.run import evaluate_checkpoint

WORKER = Path(ddp_worker.__file__)
# DRW from the 2nd epoch, so the class-weighted global mean is exercised; per-process batch 32 on 405
# images leaves a last global batch of 21, split 11/10, so the pieces differ in size too.
TINY_RUN = ["model.name=tiny-convnet", "optim.lr=0.05", "train.epochs=2", "loss.drw_start=1", "train.eval_every=1",
            "train.tensorboard=false"]


def torchrun(args: list[str], *, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node 2 tests/ddp_worker.py ARGS` with one thread per process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(WORKER), *args]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parent), **(env or {})}
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=240)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


@pytest.mark.parametrize("recipe", ["digits-ce-drw", "digits-ce-drw-sam"])
def test_two_processes_equal_one_with_the_global_batch(tmp_path, recipe):
    torchrun(["train", recipe, *TINY_RUN, "optim.batch_size=32", "--out", str(tmp_path / "two"), "--quiet"])
    assert tailsam_main(["train", recipe, *TINY_RUN, "optim.batch_size=64", "--out", str(tmp_path / "one"),
                         "--quiet"]) == 0
    two, one = weights(tmp_path / "two"), weights(tmp_path / "one")
    assert two.keys() == one.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-6, msg=key)
    # The logs agree too: the loss summed over processes, the test set gathered from both shards.
    lines = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
             for run in ("two", "one")]
    for a, b in zip(*lines):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["train_acc"] == b["train_acc"] and a["test"]["num_images"] == b["test"]["num_images"] == 500
        assert a["test"]["per_class"] == b["test"]["per_class"]
    env = json.loads((tmp_path / "two" / "env.json").read_text())
    assert env["processes"] == 2


def test_image_files_two_processes_equal_one_with_the_global_batch(tmp_path):
    # The JPEG pipeline seeds each image's augmentation from the global order, so two processes
    # see exactly the crops one process sees; the file-header check runs once, on rank 0.
    root = write_imagenet_lt(tmp_path / "imagenet", [8, 6, 5, 4, 3, 3, 2, 2, 1, 1], [2] * 10)
    run = ["train", "imagenet-lt-ce-drw-sam:smoke", "model.name=tiny-convnet", "data.workers=0",
           "data.image_size=16", "data.resize=18", "train.tensorboard=false"]
    flags = ["--data-root", str(root), "--quiet"]
    torchrun([*run, "optim.batch_size=8", *flags, "--out", str(tmp_path / "two")])
    assert tailsam_main([*run, "optim.batch_size=16", *flags, "--out", str(tmp_path / "one")]) == 0
    two, one = weights(tmp_path / "two"), weights(tmp_path / "one")
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-6, msg=key)
    finals = [json.loads((tmp_path / run / "final.json").read_text()) for run in ("two", "one")]
    assert finals[0]["per_class"] == finals[1]["per_class"]
    last = json.loads((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["test"]["num_images"] == 20   # both shards gathered


def test_paco_sam_two_processes_equal_one_with_the_global_batch(tmp_path):
    # Each process contrasts its queries with the global batch's queries (gathered with their gradients)
    # and keys, and enqueues the global batch's keys: the step one process takes with the global batch.
    rng = np.random.RandomState(0)
    np.savez(tmp_path / "cifar10.npz", x_train=rng.randint(0, 256, (500, 32, 32, 3), dtype=np.uint8),
             y_train=np.repeat(np.arange(10), 50), x_test=rng.randint(0, 256, (20, 32, 32, 3), dtype=np.uint8),
             y_test=np.repeat(np.arange(10), 2))
    run = ["train", "cifar10-paco-sam:smoke", "model.name=tiny-convnet", "model.head=paco-bnfree", "data.ratio=2",
           "data.n_max=48", "train.epochs=1", "method.args.queue=64",
           "train.tensorboard=false"]
    flags = ["--data-root", str(tmp_path), "--quiet"]
    torchrun([*run, "optim.batch_size=16", *flags, "--out", str(tmp_path / "two")])
    assert tailsam_main([*run, "optim.batch_size=32", *flags, "--out", str(tmp_path / "one")]) == 0
    states = [torch.load(tmp_path / run / "checkpoints" / "last.pt", weights_only=True) for run in ("two", "one")]
    # 10 steps; the queue of 64 keys wraps five times. Gathering and reduce-scattering the queries sums in
    # another order than one process does, and the contrast softmax at T = 0.05 amplifies it: the weights
    # agree to 3e-6 here (and drift to 1e-4 over a second epoch at the smoke variant's doubled lr).
    for part in ("model", "method"):   # the weights, the key encoder and the queue
        for key in states[1][part]:
            torch.testing.assert_close(states[0][part][key], states[1][part][key], rtol=0, atol=1e-5,
                                       msg=f"{part}.{key}")


def _hand_built_sam(local: bool) -> dict[str, torch.Tensor]:
    """SAM + SGD(momentum, weight decay) written out on ddp_worker's linear model and pieces.

    global: one perturbation from the gradient of the whole global batch;
    local: process r perturbs along its own piece's gradient. Either way the
    update uses the global-batch mean of the gradients at the perturbed weights.
    """
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    params = [model.weight.detach().clone(), model.bias.detach().clone()]
    buffers = None

    def piece_grads(w, x, y):
        w = [t.clone().requires_grad_() for t in w]
        loss = F.cross_entropy(x @ w[0].T + w[1], y, reduction="sum")
        return torch.autograd.grad(loss, w)

    def perturbation(grads):
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
        return [ddp_worker.SAM_RHO * g / norm for g in grads]

    for step in range(ddp_worker.SAM_STEPS):
        pieces = ddp_worker.sam_step_pieces(step)
        n = sum(len(y) for _, y in pieces)
        if local:
            e = [perturbation(piece_grads(params, x, y)) for x, y in pieces]
        else:
            total = [sum(gs) for gs in zip(*(piece_grads(params, x, y) for x, y in pieces))]
            e = [perturbation(total)] * len(pieces)
        grads = [sum(gs) / n for gs in zip(*(piece_grads([p + ep for p, ep in zip(params, e_r)], x, y)
                                              for (x, y), e_r in zip(pieces, e)))]
        d = [g + 1e-3 * p for g, p in zip(grads, params)]
        buffers = d if buffers is None else [0.9 * b + di for b, di in zip(buffers, d)]
        params = [p - ddp_worker.SAM_LR * b for p, b in zip(params, buffers)]
    return {"weight": params[0], "bias": params[1]}


def test_sam_perturbation_global_and_local_equal_hand_built_steps(tmp_path):
    results = {}
    torchrun(["sam-steps", str(tmp_path)])
    for mode in ("global", "local"):
        results[mode] = torch.load(tmp_path / f"{mode}.pt", weights_only=True)
        expected = _hand_built_sam(local=mode == "local")
        for key in expected:
            torch.testing.assert_close(results[mode][key], expected[key], rtol=0, atol=1e-6, msg=f"{mode} {key}")
    # m-sharpness is a different algorithm, not a rounding difference.
    assert (results["global"]["weight"] - results["local"]["weight"]).abs().max() > 1e-3


def test_killed_process_stops_the_job_and_the_same_command_resumes_to_the_same_weights(tmp_path, capsys):
    # eval.batch_size=250: each process predicts its 250 test images in one batch, as `tailsam eval`
    # does in two, so the comparison below sees the same kernels and is exact.
    run = ["train", "digits-ce-drw", "train.epochs=3", "train.eval_every=1", "loss.drw_start=2",
           "optim.batch_size=32", "eval.batch_size=250", "train.tensorboard=false", "--quiet"]
    torchrun([*run, "--out", str(tmp_path / "straight")])
    # The reported accuracy is that of the checkpoint: every process evaluated rank 0's BatchNorm statistics.
    last = json.loads((tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()[-1])["test"]
    result, _, _ = evaluate_checkpoint(tmp_path / "straight", device="cpu")
    assert last["confusion"] == result.confusion.tolist() and last["top1"] == result.top1

    killed = torchrun([*run, "--out", str(tmp_path / "killed")], env={"TAILSAM_TEST_KILL": "1:2:2"}, check=False)
    assert killed.returncode != 0
    # The surviving process names the problem in one line and where to resume from.
    lost = [line for line in killed.stderr.splitlines() if line.startswith("tailsam: process 0 of 2 lost contact")]
    assert len(lost) == 1 and "run the same command to resume" in lost[0], killed.stderr[-3000:]
    assert "[rank0]: Traceback" not in killed.stderr   # (torchrun adds its own report of the dead process)
    state = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)
    assert state["loader"]["epoch"] == 1 and state["world_size"] == 2   # the end of epoch 1, intact

    torchrun([*run, "--out", str(tmp_path / "killed")])
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "killed")
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    assert ((tmp_path / "straight" / "metrics.jsonl").read_bytes()
            == (tmp_path / "killed" / "metrics.jsonl").read_bytes())

    # One process cannot continue a 2-process run: the global batch would change. (Without final.json
    # the run is unfinished; a finished one given again is complete and touched by nobody.)
    (tmp_path / "straight" / "final.json").unlink()
    checkpoint = (tmp_path / "straight" / "checkpoints" / "last.pt").read_bytes()
    assert tailsam_main([*run, "--out", str(tmp_path / "straight")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "written by 2 process(es), this run has 1" in error[0]
    assert (tmp_path / "straight" / "checkpoints" / "last.pt").read_bytes() == checkpoint


def test_a_test_set_smaller_than_the_process_count_is_refused():
    from tailsam.config import apply_overrides
    from tailsam.errors import DataError
    from tailsam.recipes import get_recipe
    from tailsam.data import build_data

    config = apply_overrides(get_recipe("digits-ce"), ["data.test_per_class=1"])   # 10 test images
    assert len(build_data(config, torch.device("cpu"), rank=9, world_size=10).test) == 1
    with pytest.raises(DataError, match="10 test images cannot be split over 11 processes"):
        build_data(config, torch.device("cpu"), rank=0, world_size=11)
