"""Losses: hand computations, reductions to CE, re-weighting, CB weights and DRW.

The generic tests are parametrized over LOSSES, so a newly registered loss is
covered by them as soon as it is registered.
"""

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tailsam.errors import ConfigError
from tailsam.losses import DRW, LOSSES, build_loss, class_weights

# The worked example: 3 classes with counts 16, 4, 1 (n^(-1/4) = 1/2, 1/sqrt 2, 1),
# 4 samples, each class appearing as a target.
COUNTS = [16, 4, 1]
LOGITS = [
    [2.0, 0.5, -1.0],
    [0.3, 0.1, 0.2],
    [-0.5, 1.5, 0.7],
    [0.9, -0.4, 0.6],
]
TARGETS = [0, 1, 2, 1]
WEIGHTS = [0.5, 1.0, 2.0]
SKEWED_COUNTS = [50, 20, 5, 1]  # for the reductions to CE: uniform counts would hide a lot


def np_cross_entropy(z, y):
    """-log softmax(z)_y per row, written out: logsumexp(z) - z_y."""
    z = np.asarray(z, dtype=np.float64)
    return np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]


def np_weighted_mean(per_sample, y, w):
    sample_w = np.asarray(w, dtype=np.float64)[y]
    return float((sample_w * per_sample).sum() / sample_w.sum())


def np_focal(z, y, gamma):
    ce = np_cross_entropy(z, y)
    return (1 - np.exp(-ce)) ** gamma * ce


def np_ldam(z, y, max_m, s):
    n = np.asarray(COUNTS, dtype=np.float64)
    margins = n**-0.25 / (n**-0.25).max() * max_m  # 16 -> max_m/2, 4 -> max_m/sqrt 2, 1 -> max_m
    z = np.array(z, dtype=np.float64)
    z[np.arange(len(y)), y] -= margins[y]
    return np_cross_entropy(s * z, y)


def np_vs(z, y, gamma, tau):
    n = np.asarray(COUNTS, dtype=np.float64)
    delta = (1 / n) ** gamma / ((1 / n) ** gamma).min()  # (16/n)^gamma: 1 for the head class
    return np_cross_entropy(np.asarray(z) / delta + tau * np.log(n / n.sum()), y)


def np_logit_adjusted(z, y, tau):
    n = np.asarray(COUNTS, dtype=np.float64)
    return np_cross_entropy(np.asarray(z) + tau * np.log(n / n.sum()), y)


def np_balanced_softmax(z, y):
    return np_cross_entropy(np.asarray(z) + np.log(np.asarray(COUNTS, dtype=np.float64)), y)


# name -> (hyper-parameters, per-sample reference). Every registered loss needs one.
HAND_COMPUTED = {
    "ce": ({}, np_cross_entropy),
    "focal": ({"gamma": 2.0}, lambda z, y: np_focal(z, y, gamma=2.0)),
    "ldam": ({"max_m": 0.5, "s": 30.0}, lambda z, y: np_ldam(z, y, max_m=0.5, s=30.0)),
    "vs": ({"gamma": 0.3, "tau": 1.0}, lambda z, y: np_vs(z, y, gamma=0.3, tau=1.0)),
    "la": ({"tau": 1.5}, lambda z, y: np_logit_adjusted(z, y, tau=1.5)),
    "balanced_softmax": ({}, np_balanced_softmax),
}

ENTRIES = list(LOSSES)


def by_name(entry):
    return entry.name


def test_cross_entropy_reference_is_right():
    # Equal logits: -log(1/3). Sanity check of the reference used everywhere below.
    assert np_cross_entropy([[0.0, 0.0, 0.0]], [1])[0] == pytest.approx(math.log(3))


def test_every_registered_loss_has_a_hand_computation():
    assert sorted(HAND_COMPUTED) == LOSSES.names()


@pytest.mark.parametrize("name", sorted(HAND_COMPUTED))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_loss_matches_hand_computation(name, weighted):
    hparams, reference = HAND_COMPUTED[name]
    weight = torch.tensor(WEIGHTS) if weighted else None
    loss_fn = build_loss(name, COUNTS, weight=weight, **hparams)
    got = loss_fn(torch.tensor(LOGITS), torch.tensor(TARGETS)).item()
    per_sample = reference(LOGITS, TARGETS)
    expected = np_weighted_mean(per_sample, TARGETS, WEIGHTS if weighted else [1, 1, 1])
    assert got == pytest.approx(expected, rel=1e-5)
    per_sample_got = build_loss(name, COUNTS, reduction="none", **hparams)(
        torch.tensor(LOGITS), torch.tensor(TARGETS))
    np.testing.assert_allclose(per_sample_got.numpy(), per_sample, rtol=1e-5)


def test_ldam_margins_and_vs_deltas_by_hand():
    ldam = build_loss("ldam", COUNTS)
    torch.testing.assert_close(ldam.margins, torch.tensor([0.25, 0.5 / math.sqrt(2), 0.5]))
    vs = build_loss("vs", COUNTS, gamma=0.5)
    # Delta = (16 / n)^0.5 = 1, 2, 4; the loss multiplies by its inverse.
    torch.testing.assert_close(vs.logit_scale, torch.tensor([1.0, 0.5, 0.25]))


def test_balanced_softmax_equals_logit_adjustment_with_tau_1():
    z, y = torch.tensor(LOGITS), torch.tensor(TARGETS)
    torch.testing.assert_close(build_loss("balanced_softmax", COUNTS)(z, y), build_loss("la", COUNTS, tau=1.0)(z, y))


@pytest.mark.parametrize("entry", ENTRIES, ids=by_name)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_reduces_to_cross_entropy(entry, weighted):
    condition = entry.info.reduces_to_ce
    counts = [7, 7, 7, 7] if condition["uniform_counts"] else SKEWED_COUNTS
    weight = torch.tensor([0.2, 1.0, 3.0, 0.5]) if weighted else None
    loss_fn = build_loss(entry.name, counts, weight=weight, **condition["hparams"])
    torch.manual_seed(0)
    logits, target = torch.randn(16, 4), torch.randint(0, 4, (16,))
    torch.testing.assert_close(loss_fn(logits, target), F.cross_entropy(logits, target, weight=weight))


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.name != "ce"], ids=by_name)
def test_default_loss_differs_from_cross_entropy_on_skewed_counts(entry):
    torch.manual_seed(0)
    logits, target = torch.randn(16, 4), torch.randint(0, 4, (16,))
    got = build_loss(entry.name, SKEWED_COUNTS)(logits, target)
    assert not torch.allclose(got, F.cross_entropy(logits, target))


@pytest.mark.parametrize("entry", ENTRIES, ids=by_name)
def test_gradients_are_finite(entry):
    torch.manual_seed(0)
    logits = (5 * torch.randn(8, 4)).requires_grad_()
    loss = build_loss(entry.name, SKEWED_COUNTS, weight=class_weights(SKEWED_COUNTS, "cb"))(
        logits, torch.randint(0, 4, (8,)))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("entry", ENTRIES, ids=by_name)
def test_weights_reduce_like_torch_and_can_change_later(entry):
    torch.manual_seed(0)
    logits, target = torch.randn(12, 4), torch.randint(0, 4, (12,))
    weight = torch.tensor([0.2, 1.0, 3.0, 0.5])
    per_sample = build_loss(entry.name, SKEWED_COUNTS, reduction="none")(logits, target)
    expected = (weight[target] * per_sample).sum() / weight[target].sum()

    loss_fn = build_loss(entry.name, SKEWED_COUNTS)
    unweighted = loss_fn(logits, target)
    torch.testing.assert_close(unweighted, per_sample.mean())
    loss_fn.set_weight(weight)
    torch.testing.assert_close(loss_fn(logits, target), expected)
    torch.testing.assert_close(build_loss(entry.name, SKEWED_COUNTS, weight=weight)(logits, target), expected)
    weight.mul_(10)  # the loss keeps its own copy
    torch.testing.assert_close(loss_fn(logits, target), expected)
    loss_fn.set_weight(None)
    torch.testing.assert_close(loss_fn(logits, target), unweighted)
    summed = build_loss(entry.name, SKEWED_COUNTS, reduction="sum")(logits, target)
    torch.testing.assert_close(summed, per_sample.sum())


@pytest.mark.parametrize("entry", ENTRIES, ids=by_name)
def test_loss_is_float32_under_bf16_autocast(entry):
    torch.manual_seed(0)
    features, target = torch.randn(8, 5), torch.randint(0, 4, (8,))
    head = torch.nn.Linear(5, 4)
    loss_fn = build_loss(entry.name, SKEWED_COUNTS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(features)
        loss = loss_fn(logits, target)
    assert logits.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, loss_fn(logits.float(), target))


@pytest.mark.parametrize("entry", ENTRIES, ids=by_name)
def test_metadata_defaults_match_the_constructor(entry):
    signature = inspect.signature(entry.builder)
    own = {name: p.default for name, p in signature.parameters.items()
           if name not in ("counts", "weight", "reduction")}
    assert own == entry.info.hparams
    assert entry.info.paper
    # Counts-derived tensors are rebuilt from the constructor: nothing to checkpoint.
    assert build_loss(entry.name, COUNTS, weight=torch.ones(3)).state_dict() == {}


@pytest.mark.parametrize("entry", ENTRIES, ids=by_name)
def test_user_errors_are_config_errors(entry):
    with pytest.raises(ConfigError, match="no hyper-parameter bogus"):
        build_loss(entry.name, COUNTS, bogus=1.0)
    with pytest.raises(ConfigError, match=r"class\(es\) \[1\] have no training images"):
        build_loss(entry.name, [5, 0, 2])
    with pytest.raises(ConfigError, match="shape \\[3\\]"):
        build_loss(entry.name, COUNTS, weight=torch.ones(4))
    with pytest.raises(ConfigError, match="reduction"):
        build_loss(entry.name, COUNTS, reduction="avg")


def test_unknown_loss_lists_the_choices():
    with pytest.raises(ConfigError, match="unknown loss 'ldma'; choose one of: .*ldam"):
        build_loss("ldma", COUNTS)


def test_class_balanced_weights_by_hand():
    # beta = 1/2: raw (1 - b) / (1 - b^n) = 8/15, 2/3, 1 for n = 4, 2, 1; sum 33/15;
    # rescaled to sum to 3 classes: 8/11, 10/11, 15/11.
    weights = class_weights([4, 2, 1], "cb", beta=0.5)
    torch.testing.assert_close(weights, torch.tensor([8 / 11, 10 / 11, 15 / 11]))
    assert weights.dtype == torch.float32
    assert class_weights([4, 2, 1], "none") is None
    torch.testing.assert_close(class_weights([4, 2, 1], "cb", beta=0.0), torch.ones(3))


def test_class_balanced_weights_on_cifar10_lt_counts():
    counts = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    weights = class_weights(counts, "cb").double()
    expected = np.array([1e-4 / (1 - 0.9999**n) for n in counts])
    np.testing.assert_allclose(weights.numpy(), expected / expected.sum() * 10, rtol=1e-6)
    assert torch.all(weights[1:] > weights[:-1])  # rarer class, larger weight


def test_class_weight_errors():
    with pytest.raises(ConfigError, match="kind"):
        class_weights([4, 2, 1], "inverse")
    with pytest.raises(ConfigError, match="beta"):
        class_weights([4, 2, 1], "cb", beta=1.0)
    with pytest.raises(ConfigError, match="after"):
        DRW([4, 2, 1], after=-1)


def test_drw_has_no_weights_in_its_first_epochs_and_cb_weights_after():
    counts = [4, 2, 1]
    drw = DRW(counts, after=160, beta=0.5)
    assert drw.weight_at(1) is None
    assert drw.weight_at(160) is None
    for epoch in (161, 200):
        torch.testing.assert_close(drw.weight_at(epoch), class_weights(counts, "cb", beta=0.5))
    drw.weight_at(161).zero_()  # callers get a copy
    torch.testing.assert_close(drw.weight_at(162), torch.tensor([8 / 11, 10 / 11, 15 / 11]))


def test_drw_switches_a_loss_to_weighted_at_the_start_epoch():
    z, y = torch.tensor(LOGITS), torch.tensor(TARGETS)
    drw = DRW(COUNTS, after=2, beta=0.5)
    loss_fn = build_loss("ldam", COUNTS)
    values = []
    for epoch in range(1, 5):
        loss_fn.set_weight(drw.weight_at(epoch))
        values.append(loss_fn(z, y).item())
    cb = class_weights(COUNTS, "cb", beta=0.5).numpy()
    per_sample = np_ldam(LOGITS, TARGETS, max_m=0.5, s=30.0)
    assert values[:2] == pytest.approx([per_sample.mean()] * 2, rel=1e-5)
    assert values[2:] == pytest.approx([np_weighted_mean(per_sample, TARGETS, cb)] * 2, rel=1e-5)
