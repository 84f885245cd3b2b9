"""Grouped SAM, ImbSAM, Focal-SAM and SSE-SAM (../shared/METHODS.md sections 0.5, 5, 7, 8 and 10): SAM as one group;
ImbSAM: an empty tail is an SGD step on the head loss (no NaN), an all-tail batch SAM on twice the mean loss;
Focal-SAM: lambda 0 is SGD, gamma 0 and lambda 1 is SAM, and the class coefficients by hand; SSE-SAM:
both radii 0 is SGD, a head radius of 0 is ImbSAM with tail weight 1, the switch after 140 of 200 epochs."""

from __future__ import annotations

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
from tailsam.methods.focal_sam import focal_coefficients
from tailsam.methods import METHODS, GroupedSAMUpdate, MethodParts, SAMUpdate, SGDUpdate, classify
from tailsam.optim import SAM
from tailsam.recipes import get_recipe
from tailsam.train import train

COUNTS = [30, 12, 5]


def toy(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 3))


def batch(seed=1, labels=(0, 1, 2, 0, 2, 1)):
    torch.manual_seed(seed)
    return torch.randn(len(labels), 3, 2, 2), torch.tensor(labels)


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)


def imbsam_method(model, eta, *overrides):
    return grouped_method(model, "imbsam", f"method.args.eta={eta}", *overrides)


def grouped_method(model, name, *overrides, class_weight=None):
    config = apply_overrides(get_recipe("digits-ce-sam"), [f"method.name={name}", "sam.rho=0.3", *overrides])
    labels = np.repeat(np.arange(3), COUNTS)
    loader = DeviceLoader(np.zeros((len(labels), 2, 2, 3), np.uint8), labels, batch_size=6, mean=(0.5,) * 3,
                          std=(0.2,) * 3)
    criterion = build_loss("ce", COUNTS)
    criterion.set_weight(class_weight)   # as DRW sets it
    method = METHODS.build(name, MethodParts(config, model, model, criterion, criterion, None,
                                             RunData(loader, loader, COUNTS, 3, {}), torch.device("cpu")))
    method.update = method.make_update(SAM(sgd(model), rho=config.sam.rho), autocast=nullcontext, scaler=None,
                                       local_perturbation=False)
    return method


def assert_same_weights(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)


def test_grouped_sam_with_one_group_is_sam():
    x, y = batch()
    grouped, plain = toy(), toy()
    grouped_update = GroupedSAMUpdate(SAM(sgd(grouped), rho=0.3), grouped, scales=(1.0,), autocast=nullcontext,
                                      freeze_bn=False)

    def one_group():
        logits = grouped(x)
        loss = F.cross_entropy(logits, y)
        return loss, logits, [loss]

    grouped_update(one_group)
    SAMUpdate(SAM(sgd(plain), rho=0.3), plain, autocast=nullcontext, freeze_bn=False)(
        classify(plain, F.cross_entropy, x, y))
    assert_same_weights(grouped, plain)


def test_imbsam_without_tail_samples_is_an_sgd_step_on_the_head_loss():
    x, y = batch()
    model, reference = toy(), toy()
    imbsam_method(model, eta=1).step((x, y))   # no class has fewer than 1 image: no tail
    SGDUpdate(sgd(reference), autocast=nullcontext)(classify(reference, F.cross_entropy, x, y))
    assert_same_weights(model, reference)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_imbsam_with_every_class_in_the_tail_is_sam_on_twice_the_mean_loss():
    x, y = batch()
    model, reference = toy(), toy()
    imbsam_method(model, eta=1000).step((x, y))
    SAMUpdate(SAM(sgd(reference), rho=0.3), reference, autocast=nullcontext, freeze_bn=False)(
        classify(reference, lambda logits, labels: 2 * F.cross_entropy(logits, labels), x, y))
    assert_same_weights(model, reference)


def test_imbsam_perturbs_along_the_tail_gradient_only():
    x, y = batch(labels=(0, 0, 0, 2, 0, 0))   # one tail sample (class 2 has 5 < 20 images)
    model = toy()
    tail_only = toy()
    loss_tail = 2 * F.cross_entropy(tail_only(x[3:4]), y[3:4], reduction="sum") / 6
    g = torch.autograd.grad(loss_tail, list(tail_only.parameters()))
    norm = torch.sqrt(sum((t ** 2).sum() for t in g))
    seen = []
    real_copy = torch._foreach_copy_

    def spy(params, origins):   # the weights at w + e, just before they go back to w
        seen.append([p.detach().clone() - o for p, o in zip(params, origins)])
        return real_copy(params, origins)

    torch._foreach_copy_ = spy
    try:
        imbsam_method(model, eta=20).step((x, y))
    finally:
        torch._foreach_copy_ = real_copy
    (e,) = seen
    for e_part, g_part in zip(e, g):
        torch.testing.assert_close(e_part, 0.3 * g_part / norm, rtol=1e-5, atol=1e-7)


def test_imbsam_refusals():
    with pytest.raises(ConfigError, match="needs sam.kind=sam"):
        imbsam_method(toy(), 20, "sam.kind=none")
    with pytest.raises(ConfigError, match="no setting beta"):
        imbsam_method(toy(), 20, "method.args.beta=1")


@pytest.mark.parametrize("name", ["imbsam", "sse-sam", "focal-sam"])
def test_grouped_variants_train_through_the_loop(name, tmp_path):
    # Digits-LT (120 down to 6 images a class): eta 50 puts classes in both groups, so SSE-SAM
    # perturbs the head and the tail in its first epoch (stage 0.7 of 2 epochs).
    extra = ["method.args.eta=50"] if name != "focal-sam" else []
    config = apply_overrides(get_recipe("digits-ce-sam"), [f"method.name={name}", "train.epochs=2", *extra,
                                                           "train.eval_every=1", "train.tensorboard=false"])
    final = train(config, tmp_path / "run", verbose=False)
    assert final["epoch"] == 2 and np.isfinite(final["top1"])


def test_focal_sam_with_lambda_0_is_sgd_and_with_gamma_0_lambda_1_is_sam():
    x, y = batch()
    model, reference = toy(), toy()
    grouped_method(model, "focal-sam", "method.args.sharpness=0").step((x, y))
    SGDUpdate(sgd(reference), autocast=nullcontext)(classify(reference, F.cross_entropy, x, y))
    assert_same_weights(model, reference)
    model, reference = toy(), toy()
    grouped_method(model, "focal-sam", "method.args.sharpness=1", "method.args.flat_gamma=0").step((x, y))
    SAMUpdate(SAM(sgd(reference), rho=0.3), reference, autocast=nullcontext, freeze_bn=False)(
        classify(reference, F.cross_entropy, x, y))
    assert_same_weights(model, reference)


def test_focal_coefficients_of_cifar10_lt_ratio_100():   # METHODS.md 7.1: gamma 3.0, lambda 0.5
    beta = focal_coefficients([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], 0.5, 3.0)
    assert beta[0].item() == pytest.approx(0.1064, abs=5e-5) and beta[-1].item() == pytest.approx(0.4940, abs=5e-5)


def test_sse_sam_special_cases_and_its_stage_switch():
    x, y = batch(labels=(0, 0, 2, 1, 2, 0))
    model, reference = toy(), toy()
    sse = grouped_method(model, "sse-sam", "method.args.eta=20", "method.args.head_rho=0", "sam.rho=0")
    sse.start_epoch(1)
    sse.step((x, y))   # both radii 0: SGD
    SGDUpdate(sgd(reference), autocast=nullcontext)(classify(reference, F.cross_entropy, x, y))
    assert_same_weights(model, reference)
    model, reference = toy(), toy()
    sse = grouped_method(model, "sse-sam", "method.args.eta=20", "method.args.head_rho=0")
    sse.start_epoch(1)
    sse.step((x, y))   # no head radius: ImbSAM with tail weight 1
    grouped_method(reference, "imbsam", "method.args.eta=20", "method.args.tail_weight=1").step((x, y))
    assert_same_weights(model, reference)
    sse = grouped_method(toy(), "sse-sam", "method.args.head_rho=0.05", "method.args.stage=0.7", "train.epochs=200")
    assert [sse.start_epoch(e)["head_rho"] for e in (1, 140, 141, 200)] == [0.05, 0.05, 0.0, 0.0]
    assert sse.update.scales == (0.0, 1.0)


def hand_grouped_step(model, x, y, groups, lr=0.1, weight_decay=1e-3):
    """Grouped SAM's first step written out: for each group (per-sample weights a, radius rho) the gradient of
    sum_i a_i CE_i at w, or at w + rho g / ||g|| when rho > 0; their sum, plus weight decay, is the first SGD
    step (a fresh momentum buffer is the gradient itself). Returns the parameters in model order."""
    names = [name for name, _ in model.named_parameters()]
    w = [p.detach().clone() for p in model.parameters()]

    def grad_at(weights, a):
        weights = [t.clone().requires_grad_() for t in weights]
        logits = torch.func.functional_call(model, dict(zip(names, weights)), (x,))
        return torch.autograd.grad((a * F.cross_entropy(logits, y, reduction="none")).sum(), weights)

    total = [torch.zeros_like(t) for t in w]
    for a, rho in groups:
        g = grad_at(w, a)
        norm = torch.sqrt(sum(t.pow(2).sum() for t in g))
        if rho > 0 and norm > 0:
            g = grad_at([t + rho * gt / norm for t, gt in zip(w, g)], a)
        total = [s + gt for s, gt in zip(total, g)]
    return [t - lr * (gt + weight_decay * t) for t, gt in zip(w, total)]


def linear_toy():
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3))


@pytest.mark.parametrize("network", ["linear", "mlp"])
@pytest.mark.parametrize("name", ["imbsam", "focal-sam", "sse-sam", "imbsam-with-class-weights"])
def test_each_grouped_variant_is_its_hand_built_step(name, network):
    """On the 4->3 linear model and on an MLP, whose backward keeps weights (a perturbed pass that moves
    them in place must come after every gradient at w)."""
    torch.manual_seed(4)
    x, y = torch.randn(6, 1, 2, 2), torch.tensor([0, 2, 1, 0, 2, 0])
    n, tail = len(y), (y == 2).float()   # class 2 (5 images) is the only class below eta = 10
    class_weight = None
    if name == "imbsam-with-class-weights":   # weighted losses over the batch's sum of weights, as DRW's mean
        class_weight = torch.tensor([0.2, 1.0, 1.8])
        name, w = "imbsam", class_weight[y]
        overrides, groups = ["method.args.eta=10"], [((1 - tail) * w / w.sum(), 0.0), (2 * tail * w / w.sum(), 0.3)]
    elif name == "imbsam":
        overrides, groups = ["method.args.eta=10"], [((1 - tail) / n, 0.0), (2 * tail / n, 0.3)]
    elif name == "focal-sam":
        beta = 0.7 * (1 - torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS)) ** 2.0
        beta = beta.float()[y]
        overrides = ["method.args.sharpness=0.7", "method.args.flat_gamma=2"]
        groups = [((1 - beta) / n, 0.0), (beta / n, 0.3)]
    else:
        overrides = ["method.args.eta=10", "method.args.head_rho=0.1"]
        groups = [((1 - tail) / n, 0.1), (tail / n, 0.3)]
    model = linear_toy() if network == "linear" else nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.Tanh(),
                                                                    nn.Linear(5, 3))
    expected = hand_grouped_step(model, x, y, groups)
    method = grouped_method(model, name, *overrides, class_weight=class_weight)
    method.start_epoch(1)
    method.step((x, y))
    for p, q in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
