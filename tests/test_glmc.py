"""GLMC and GLMC+SAM (../shared/METHODS.md sections 1, 2 and 10): schedule, weights, sampling, mixing, heads,
the loss by hand, and SAM's treatment of the heads."""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from torch import nn

from tailsam.config import apply_overrides
from tailsam.errors import ConfigError
from tailsam.data import Augment, ClassPowerSampler, DeviceLoader, RunData
from tailsam.methods import METHODS, MethodParts, SAMUpdate, SGDUpdate
from tailsam.methods.glmc import cutmix, label_weights, negative_cosine
from tailsam.models import GLMCHeads, build_model
from tailsam.optim import SAM
from tailsam.recipes import get_recipe

COUNTS = [6, 3, 2]


class Toy(nn.Module):
    """A BatchNorm-free backbone (flatten, linear) under GLMC's four heads."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3 * 4 * 4, 8)
        self.head = GLMCHeads(8, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.body(x.flatten(1))))


def toy_method(config_overrides=(), seed=0):
    torch.manual_seed(seed)
    config = apply_overrides(get_recipe("cifar10-glmc:smoke"), ["train.epochs=200", *config_overrides])
    labels = np.repeat(np.arange(3), COUNTS)
    images = np.random.RandomState(seed).randint(0, 256, (len(labels), 4, 4, 3)).astype(np.uint8)
    loader = DeviceLoader(images, labels, batch_size=2, mean=(0.5,) * 3, std=(0.25,) * 3,
                          augment=Augment(padding=1, flip=True), seed=seed)
    data = RunData(loader, loader, COUNTS, 3, {})
    model = Toy()
    parts = MethodParts(config, model, model, None, None, None, data, torch.device("cpu"))
    return METHODS.build("glmc", parts), model, config


def test_alpha_follows_the_1_indexed_epoch():
    method, _, _ = toy_method()
    alphas = [method.start_epoch(e)["alpha"] for e in (1, 101, 200)]
    assert alphas == pytest.approx([1.0, 0.75, 0.009975])


def test_label_weights_sum_to_the_class_count_and_follow_n_to_the_minus_tau():
    w = label_weights([5000, 500, 50], 1.2)
    assert w.sum().item() == pytest.approx(3.0)
    assert (w[2] / w[0]).item() == pytest.approx(100 ** 1.2, rel=1e-5)


@pytest.mark.parametrize("q", [0.0, 0.2, 1.0])
def test_resampled_class_frequencies_are_proportional_to_n_to_the_1_minus_q(q):
    counts = np.array([400, 150, 60, 25, 10])
    labels = torch.as_tensor(np.repeat(np.arange(5), counts))
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([ClassPowerSampler(labels, power=1 - q).epoch_order(generator) for _ in range(40)])
    observed = np.bincount(labels[draws].numpy(), minlength=5)
    expected = counts ** (1 - q) / (counts ** (1 - q)).sum() * len(draws)
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert chi2 < 18.47   # the 0.999 quantile of chi-square with 4 degrees of freedom


def test_cutmix_boxes():
    a, b = torch.zeros(2, 3, 32, 32), torch.ones(2, 3, 32, 32)
    assert torch.equal(cutmix(a, b, 1.0, (16, 16)), a)                  # lambda 1 replaces nothing
    assert torch.equal(cutmix(a, b, 0.0, (16, 16)), b)                  # side 32 around the centre: all
    box = cutmix(a, b, 0.75, (3, 30))        # side ceil(32 * 0.5) = 16: rows [0, 11), columns [22, 32)
    expected = torch.zeros(32, 32)
    expected[0:11, 22:32] = 1
    assert torch.equal(box[0, 0], expected) and torch.equal(box[1, 2], expected)


def test_no_gradient_through_the_stop_gradient_side():
    p, z = torch.randn(4, 6, requires_grad=True), torch.randn(4, 6, requires_grad=True)
    negative_cosine(p, z).backward()
    assert z.grad is None and p.grad is not None
    assert negative_cosine(z, z).item() == pytest.approx(-1.0)


@pytest.mark.parametrize("name, classes, params", [
    ("resnet32_w64", 10, 7_438_164), ("resnet32_w64", 100, 7_484_424),
    ("resnet34_cifar", 10, 21_484_372), ("resnet34_cifar", 100, 21_576_712),
])
def test_glmc_backbones_with_their_four_heads_have_the_reference_parameter_counts(name, classes, params):
    assert sum(p.numel() for p in build_model(name, classes, head="glmc").parameters()) == params


def test_evaluation_reads_fc_cb_alone():
    model = build_model("resnet8", 10, head="glmc").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model.head.fc_cb(model.features(x)))
        model.train()
        out = model(x)
    assert out.logits.shape == out.balanced_logits.shape == (2, 10) and out.prediction.shape == (2, 32)


def test_the_loss_equals_a_hand_computation():   # a batch of 2 images, 3 classes
    method, model, _ = toy_method()
    method.start_epoch(101)   # alpha 0.75
    method.update = lambda loss_pass: loss_pass()[:2]   # compute, do not step
    batch = next(iter(method.batches))
    ((a1, a2), ya), ((b1, b2), yb) = batch
    torch.manual_seed(7)
    loss, logits, _ = method.step(batch)
    torch.manual_seed(7)   # the same draws, by hand
    lam = float(torch.rand(()))
    row, col = torch.randint(0, 4, (2,)).tolist()
    x_mix = lam * a1 + (1 - lam) * b1
    x_cut = a2.clone()
    half = int(np.ceil(4 * np.sqrt(1 - lam))) // 2
    r0, r1, c0, c1 = (min(max(v, 0), 4) for v in (row - half, row + half, col - half, col + half))
    x_cut[:, :, r0:r1, c0:c1] = b2[:, :, r0:r1, c0:c1]
    w = np.array(COUNTS, dtype=float) ** -1.2
    w = w / w.sum() * 3
    eye = np.eye(3)
    hard = lam * eye[ya] + (1 - lam) * eye[yb]
    soft = lam * w[ya][:, None] * eye[ya] + (1 - lam) * w[yb][:, None] * eye[yb]
    with torch.no_grad():
        mix, cut = (tuple(t.double().numpy() for t in model(x)) for x in (x_mix, x_cut))

    def sce(o, t):
        o = o - o.max(1, keepdims=True)
        return float((-(t * (o - np.log(np.exp(o).sum(1, keepdims=True)))).sum(1)).mean())

    def d(p, z):
        return float(-((p * z).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(z, axis=1)).mean())

    expected = (0.75 * (sce(mix[0], hard) + sce(cut[0], hard)) + 0.25 * (sce(mix[1], soft) + sce(cut[1], soft))
                + 4.0 * (d(mix[3], cut[2]) + d(cut[3], mix[2])))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(logits.detach().numpy(), mix[0], rtol=1e-5)   # fc: the training accuracy's


def one_step(update_kind: str, rho: float = 0.05, seed: int = 0):
    method, model, config = toy_method(seed=seed)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-3)
    if update_kind == "sgd":
        method.update = SGDUpdate(sgd, autocast=nullcontext)
    else:
        method.update = SAMUpdate(SAM(sgd, rho=rho), model, autocast=nullcontext, freeze_bn=False)
    method.start_epoch(3)
    torch.manual_seed(11)
    method.step(next(iter(method.batches)))
    return method, model


def test_sam_with_rho_0_is_exactly_the_glmc_sgd_step():
    _, sgd_model = one_step("sgd")
    _, sam_model = one_step("sam", rho=0.0)
    for (name, a), b in zip(sgd_model.named_parameters(), sam_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7, msg=name)


def test_sam_perturbs_what_the_ascent_reaches_and_still_updates_the_projection_heads(monkeypatch):
    moved = {}
    real_second_step = SAM.second_step

    def spy(self, *args, **kwargs):
        moved["ids"] = {id(p) for p in self._origins[0]}
        return real_second_step(self, *args, **kwargs)

    monkeypatch.setattr(SAM, "second_step", spy)
    torch.manual_seed(0)
    before = Toy()
    _, model = one_step("sam", rho=0.05)   # step 1: no KeyError from heads without an ascent gradient
    head = model.head
    assert id(head.projection.weight) not in moved["ids"] and id(head.predictor.weight) not in moved["ids"]
    assert id(head.fc.weight) in moved["ids"] and id(head.fc_cb.weight) in moved["ids"]
    assert id(model.body.weight) in moved["ids"]
    for name in ("projection", "predictor"):   # updated with their gradient at w + e
        assert not torch.equal(getattr(head, name).weight, getattr(before.head, name).weight), name


@pytest.mark.parametrize("overrides, match", [
    (["loss.weighting=drw"], "own losses, weights and re-sampled loader"),
    (["data.sampler=class-balanced"], "own losses, weights and re-sampled loader"),
    (["method.args.mix=1"], "no setting mix"),
    (["model.head=linear"], "needs model.head=glmc"),
])
def test_glmc_refuses_settings_it_would_ignore(overrides, match):
    with pytest.raises(ConfigError, match=match):
        toy_method(overrides)


def test_the_plain_method_refuses_glmc_heads():
    _, model, config = toy_method()
    plain = dataclasses.replace(config, method=dataclasses.replace(config.method, name="plain"))
    method_parts = MethodParts(plain, model, model, None, None, None, toy_method()[0].parts.data, torch.device("cpu"))
    with pytest.raises(ConfigError, match="is for method glmc: train it with method.name=glmc"):
        METHODS.build("plain", method_parts)
