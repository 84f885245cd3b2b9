"""CC-SAM (../shared/METHODS.md sections 6 and 10): both stages' steps equal a hand computation on a 4->3
linear classifier (per class, with autograd, as the reference loops); the radius formula; stage 2's class
weights (0.0050 head, 2.3026 tail at ratio 100), its loss share capped at u, its fresh momentum and frozen
backbone; the schedule's two stages; a run through the loop that resumes exactly across the stage switch."""

from __future__ import annotations

import copy
import math
from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tailsam.config import apply_overrides
from tailsam.data import DeviceLoader, RunData
from tailsam.errors import ConfigError
from tailsam.losses import build_loss
from tailsam.methods import METHODS, MethodParts
from tailsam.methods.cc_sam import retraining_weights
from tailsam.optim.schedules import build_lr_schedule
from tailsam.recipes import get_recipe
from tailsam.train import RunInterrupted, train
from test_train import assert_same_run, stop_at

COUNTS = [30, 12, 5]
LR, WEIGHT_DECAY = 0.1, 1e-3


class LinearNet(nn.Module):
    """A 4->3 linear classifier on a backbone: none (the identity), or one linear layer."""

    def __init__(self, backbone: bool = False):
        super().__init__()
        torch.manual_seed(3)
        self.backbone = nn.Linear(4, 4) if backbone else nn.Identity()
        self.head = nn.Linear(4, 3)

    def features(self, x):
        return self.backbone(x.flatten(1))

    def forward(self, x):
        return self.head(self.features(x))


def cc_sam(model, *overrides, stage_one: int | None = 1):
    stage = [f"method.args.stage_one_epochs={stage_one}"] if stage_one is not None else []
    config = apply_overrides(get_recipe("digits-ce"), [
        "method.name=cc-sam", *stage, "method.args.noise_ratio=0.5",
        "method.args.flat_ratio=0.4", "method.args.up_limit=0.3", "train.epochs=2", *overrides])
    labels = np.repeat(np.arange(3), COUNTS)
    loader = DeviceLoader(np.zeros((len(labels), 2, 2, 1), np.uint8), labels, batch_size=6, mean=(0.5,),
                          std=(0.2,))
    criterion = build_loss("ce", COUNTS)
    method = METHODS.build("cc-sam", MethodParts(config, model, model, criterion, criterion, None,
                                                 RunData(loader, loader, COUNTS, 1, {}), torch.device("cpu")))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=WEIGHT_DECAY)
    method.update = method.make_update(optimizer, autocast=nullcontext, scaler=None, local_perturbation=False)
    return method


def batch():
    torch.manual_seed(4)
    return torch.randn(6, 1, 2, 2), torch.tensor([0, 2, 1, 0, 2, 0])


def sgd_step(params, grads):
    """The first SGD step after a (re)start: the momentum buffer is the gradient plus weight decay."""
    return [p - LR * (g + WEIGHT_DECAY * p) for p, g in zip(params, grads)]


def hand_stage_one(model, x, y, seed, noise_ratio=0.5, flat_ratio=0.4):
    """The expected parameters after one stage-1 step, in `model.parameters()` order."""
    model = copy.deepcopy(model)
    torch.manual_seed(seed)
    lam, order = float(torch.rand(())), torch.randperm(len(y))
    z = model.features(lam * x + (1 - lam) * x[order])
    w, b = model.head.weight, model.head.bias
    logits = z @ w.T + b
    original = lam * F.cross_entropy(logits, y, reduction="none") + (1 - lam) * F.cross_entropy(
        logits, y[order], reduction="none")
    theta = torch.sqrt(w.detach().pow(2).sum() + b.detach().pow(2).sum()) + 1e-12
    size = w.numel() + b.numel()
    flat = torch.zeros(len(y))
    for c in y.unique().tolist():
        members = y == c
        perturbation = []
        for g in torch.autograd.grad(original[members].mean(), (w, b), retain_graph=True):
            rho = noise_ratio * theta.sqrt() / (g.norm().sqrt() * math.sqrt(2) * (COUNTS[c] - 1) ** 0.25
                                               * size ** 0.25)
            perturbation.append(rho * math.sqrt(size) * g / g.norm())
        e_w, e_b = perturbation
        flat[members] = F.cross_entropy(z[members] @ (w + e_w).T + b + e_b, y[members], reduction="none")
    loss = (1 - flat_ratio) * original.mean() + flat_ratio * flat.mean()
    params = list(model.parameters())
    return sgd_step([p.detach() for p in params], torch.autograd.grad(loss, params))


def hand_stage_two(model, x, y, share, div=2.0, adversarial=1.0):
    z = model.features(x).detach().requires_grad_()
    w, b = (t.detach().clone().requires_grad_() for t in (model.head.weight, model.head.bias))
    class_weight = torch.log(max(COUNTS) / torch.tensor(COUNTS, dtype=torch.float64) + 0.01).float() / div
    plain = F.cross_entropy(z @ w.T + b, y, reduction="none")
    moved = z.detach().clone()
    for c in y.unique().tolist():
        members = y == c
        g = torch.autograd.grad(plain[members].mean(), z, retain_graph=True)[0]   # zero rows off class c
        moved[members] += adversarial * class_weight[c] * (g / g.norm())[members]
    adversarial_loss = class_weight[y] * F.cross_entropy(moved @ w.T + b, y, reduction="none")
    loss = share * adversarial_loss.mean() + (1 - share) * plain.mean()
    return sgd_step((w.detach(), b.detach()), torch.autograd.grad(loss, (w, b)))


@pytest.mark.parametrize("backbone", [False, True], ids=["linear", "with-a-backbone-layer"])
def test_both_stages_equal_their_hand_computation_on_a_linear_classifier(backbone):
    model = LinearNet(backbone)
    method = cc_sam(model)
    x, y = batch()
    assert method.start_epoch(1)["stage"] == 1
    expected = hand_stage_one(model, x, y, seed=7)
    torch.manual_seed(7)
    method.step((x, y))
    for p, q in zip(model.parameters(), expected, strict=True):   # the backbone's gradient includes e's term
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)

    for _ in method.batches:   # the rest of epoch 1: stage 1 is over
        pass
    assert method.batches.active is method.batches.second and method.batches.epoch == 1
    values = method.start_epoch(2)
    assert values["stage"] == 2 and values["adversarial_share"] == pytest.approx(0.3)   # min(1 / 1, u = 0.3)
    assert not method.update.optimizer.state   # stage 2 starts without stage 1's momentum
    expected = hand_stage_two(model, x, y, share=0.3)
    method.step((x, y))
    torch.testing.assert_close(model.head.weight, expected[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.head.bias, expected[1], rtol=1e-5, atol=1e-6)


def test_a_tiny_noise_ratio_leaves_the_flat_term_as_cross_entropy_on_the_hard_label():
    model, reference = LinearNet(), LinearNet()
    x, y = batch()
    method = cc_sam(model, "method.args.noise_ratio=0")
    method.start_epoch(1)
    torch.manual_seed(7)
    method.step((x, y))
    torch.manual_seed(7)
    lam, order = float(torch.rand(())), torch.randperm(len(y))
    logits = reference((lam * x + (1 - lam) * x[order]))
    original = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[order])
    loss = 0.6 * original + 0.4 * F.cross_entropy(logits, y)
    expected = sgd_step([p.detach() for p in reference.parameters()],
                        torch.autograd.grad(loss, list(reference.parameters())))
    for p, q in zip(model.parameters(), expected):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_stage_two_moves_the_classifier_only():
    model = LinearNet(backbone=True)
    method = cc_sam(model)
    for _ in method.batches:
        pass
    method.start_epoch(2)
    backbone = [p.detach().clone() for p in model.backbone.parameters()]
    head = [p.detach().clone() for p in model.head.parameters()]
    method.step(batch())
    assert all(torch.equal(p, q) for p, q in zip(model.backbone.parameters(), backbone))
    assert not any(torch.equal(p, q) for p, q in zip(model.head.parameters(), head))


def test_retraining_weights_at_ratio_100():
    weights = retraining_weights([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], div=2.0)
    assert weights[0].item() == pytest.approx(0.0050, abs=5e-5)
    assert weights[-1].item() == pytest.approx(2.3026, abs=5e-5)


def test_the_two_stage_lr_schedule():
    lr = build_lr_schedule("cc_sam", base_lr=0.1)
    assert [round(lr(e) / 0.1, 3) for e in (1, 2, 3, 4, 5, 6)] == [0.467, 0.6, 0.733, 0.867, 1.0, 1.0]
    # The reference steps its scheduler before each epoch: x0.1 from epoch 160, x0.01 from 180 (1-indexed).
    assert [lr(e) / 0.1 for e in (159, 160, 179, 180, 200)] == pytest.approx([1, 0.1, 0.1, 0.01, 0.01])
    assert [lr(e) for e in (201, 230)] == pytest.approx([0.01, 0.01])


def test_refusals():
    with pytest.raises(ConfigError, match="stage_two_after"):
        cc_sam(LinearNet(), "optim.lr_schedule=cc_sam", "optim.lr_args.stage_two_after=2")
    with pytest.raises(ConfigError, match="stage boundary"):
        cc_sam(LinearNet(), stage_one=None)
    with pytest.raises(ConfigError, match="sam.kind=none"):
        cc_sam(LinearNet(), "sam.kind=sam")


def test_cc_sam_trains_through_the_loop_and_resumes_exactly_across_its_stages(tmp_path):
    config = apply_overrides(get_recipe("digits-ce"), [
        "method.name=cc-sam", "optim.lr_schedule=cc_sam", "train.epochs=3", "train.eval_every=1",
        "train.tensorboard=false"])
    config.optim.lr_args = {"stage_two_after": 2, "warmup_epochs": 1, "milestones": [1]}
    train(config, tmp_path / "whole", verbose=False)
    # Stopped inside stage 2, and after stage 1's last step (digits: 4 steps an epoch), where the checkpoint
    # holds stage 1's momentum and the resumed run must drop it as the uninterrupted one does.
    for epoch, step in ((3, 1), (2, 3)):
        with pytest.raises(RunInterrupted):
            train(config, tmp_path / f"resumed-{epoch}-{step}", verbose=False, on_step=stop_at(epoch, step))
        train(config, tmp_path / f"resumed-{epoch}-{step}", verbose=False)
        assert_same_run(tmp_path / f"resumed-{epoch}-{step}", tmp_path / "whole")
