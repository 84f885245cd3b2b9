"""The method plug-in: a method with two views, two samplers, a trained extra head and a queue trains
through the unchanged loop and resumes exactly; the update steps take any loss pass."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tailsam.data import PairedBatches
from tailsam.methods import METHODS, Method, MethodParts, SAMUpdate, SGDUpdate, StepOutput, classify
from tailsam.optim import SAM
from tailsam.train import RunInterrupted, train
from test_train import assert_same_run, stop_at, tiny_config

QUEUE = 24   # not a multiple of the batch: the ring buffer wraps mid-batch


class LogitQueue(nn.Module):
    """A ring buffer of the last QUEUE logits, advanced on the device (its pointer is a buffer too)."""

    def __init__(self, size: int, dim: int, device: torch.device):
        super().__init__()
        self.register_buffer("items", torch.zeros(size, dim, device=device))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.int64, device=device))

    def push(self, rows: torch.Tensor) -> None:
        slots = (self.pointer + torch.arange(len(rows), device=rows.device)) % len(self.items)
        self.items[slots] = rows.float()
        self.pointer.copy_((self.pointer + len(rows)) % len(self.items))


class TwoViewsQueue(Method):
    """Two views of each instance-sampled image, a class-balanced batch through an extra head, and a
    queue of past logits that the loss pass reads (the same queue in SAM's two passes)."""

    def __init__(self, parts: MethodParts):
        super().__init__(parts)
        classes = len(parts.data.counts)
        self.batches = PairedBatches(parts.data.train, parts.data.train.resampled("class-balanced", seed=7))
        self.extra["head"] = nn.Linear(classes, classes).to(parts.device)
        self.extra["queue"] = LogitQueue(QUEUE, classes, parts.device)

    def step(self, batch) -> StepOutput:
        (images, labels), (balanced, balanced_labels) = batch
        queue = self.extra["queue"].items.clone()   # the keys of this step, fixed for both SAM passes

        def loss_pass():
            n = len(images)
            logits = self.net(torch.cat([images, images.flip(3), balanced]))
            loss = (self.loss_fn(logits[:n], labels) + self.loss_fn(logits[n:2 * n], labels)
                    + F.cross_entropy(self.extra["head"](logits[2 * n:]), balanced_labels)
                    + 1e-3 * (logits[:n].float() @ queue.T).square().mean())
            return loss, logits[:n]

        loss, logits = self.update(loss_pass)
        self.extra["queue"].push(logits)
        return StepOutput(loss, logits, labels)


if "two-views-queue" not in METHODS:   # registered once, however many times pytest imports this module
    METHODS.register("two-views-queue", paper="a test of the plug-in")(TwoViewsQueue)


def toy_config():
    return tiny_config("digits-ldam-drw-sam", "method.name=two-views-queue")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy")
    train(toy_config(), out, verbose=False)
    return out


def test_a_method_with_views_samplers_head_and_queue_trains_through_the_loop(toy_run):
    state = torch.load(toy_run / "checkpoints" / "last.pt", weights_only=True)
    assert set(state["loader"]) == {"epoch", "position", "first", "second"}
    assert state["loader"]["first"]["epoch"] == state["loader"]["second"]["epoch"] == 4
    method = state["method"]
    assert set(method) == {"head.weight", "head.bias", "queue.items", "queue.pointer"}
    # Every row of the queue was written (4 epochs x 512 images >> 24 slots); the pointer went round.
    assert (method["queue.items"].abs().sum(1) > 0).all()
    assert 0 <= int(method["queue.pointer"]) < QUEUE
    # The extra head is trained: its two tensors are the optimizer's last parameters, with momentum.
    params = state["optimizer"]["param_groups"][0]["params"]
    head = [state["optimizer"]["state"][i]["momentum_buffer"] for i in params[-2:]]
    assert [tuple(b.shape) for b in head] == [tuple(method["head.weight"].shape), tuple(method["head.bias"].shape)]
    assert all(b.abs().sum() > 0 for b in head)


@pytest.mark.parametrize("epoch, step", [(2, 3), (3, 1)], ids=["after-epoch-2", "mid-epoch-3"])
def test_the_toy_method_resumes_exactly(tmp_path, toy_run, epoch, step):
    with pytest.raises(RunInterrupted):
        train(toy_config(), tmp_path, verbose=False, on_step=stop_at(epoch, step))
    train(toy_config(), tmp_path, verbose=False)
    assert_same_run(tmp_path, toy_run)
    resumed = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["method"]
    uninterrupted = torch.load(toy_run / "checkpoints" / "last.pt", weights_only=True)["method"]
    for key in uninterrupted:
        assert torch.equal(resumed[key], uninterrupted[key]), key


def test_updates_take_any_loss_pass():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    start = [p.detach().clone() for p in model.parameters()]

    def sgd_by_hand():
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        return [p - 0.1 * p.grad for p in model.parameters()]

    expected = sgd_by_hand()
    with torch.no_grad():
        for p, s in zip(model.parameters(), start):
            p.copy_(s)
    update = SGDUpdate(torch.optim.SGD(model.parameters(), lr=0.1), autocast=nullcontext)
    loss, logits = update(classify(model, F.cross_entropy, x, y))
    for p, e in zip(model.parameters(), expected):
        assert torch.allclose(p, e, atol=1e-6)
    assert loss.shape == () and logits.shape == (8, 3) and not logits.requires_grad

    # SAM runs the pass twice: at w, then at w + e (the second call sees perturbed weights).
    calls = []

    def counting_pass():
        calls.append([p.detach().clone() for p in model.parameters()])
        out = model(x)
        return F.cross_entropy(out, y), out

    before = [p.detach().clone() for p in model.parameters()]
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.5)
    SAMUpdate(sam, model, autocast=nullcontext, freeze_bn=True)(counting_pass)
    assert len(calls) == 2
    assert all(torch.equal(a, b) for a, b in zip(calls[0], before))
    shift = torch.cat([(b - a).flatten() for a, b in zip(calls[0], calls[1])])
    assert shift.norm().item() == pytest.approx(0.5, rel=1e-5)   # ||e|| = rho
