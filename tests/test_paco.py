"""PaCo and PaCo+SAM (../shared/METHODS.md sections 3, 4 and 10): the loss by hand, its reduction to
logit-adjusted CE, the queue, the momentum update, the order of a SAM step, and a run with resume."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tailsam.config import apply_overrides
from tailsam.data import Augment, DeviceLoader, RunData
from tailsam.data.views import cutout, paco_query_view, simclr_key_view
from tailsam.errors import ConfigError
from tailsam.losses.paco import paco_loss
from tailsam.methods import METHODS, MethodParts, SAMUpdate, SGDUpdate
from tailsam.methods.momentum import KeyQueue, momentum_update
from tailsam.models import PaCoHeads
from tailsam.optim import SAM
from tailsam.recipes import get_recipe
from tailsam.train import RunInterrupted, train
from test_train import assert_same_run, stop_at


def test_the_loss_equals_a_hand_computation_with_b2_k4_c3():
    rng = np.random.RandomState(0)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    q, k, queue = unit(rng.randn(2, 5)), unit(rng.randn(2, 5)), unit(rng.randn(4, 5))
    labels, queue_labels = np.array([0, 2]), np.array([2, 1, 0, 2])
    logits, log_prior = rng.randn(2, 3), np.log(np.array([0.6, 0.3, 0.1]) + 1e-9)
    alpha, beta, gamma, temp = 0.3, 1.0, 0.5, 0.2
    contrast, contrast_labels = np.concatenate([q, k, queue]), np.concatenate([labels, labels, queue_labels])
    expected = []
    for i in range(2):
        s = logits[i] + log_prior
        others = [a for a in range(8) if a != i]
        t = {a: q[i] @ contrast[a] / temp for a in others}
        log_z = np.log(np.exp(s).sum() + gamma * sum(np.exp(v) for v in t.values()))
        positives = [a for a in others if contrast_labels[a] == labels[i]]
        assert 2 + i in positives   # its own key
        term = beta * (s[labels[i]] - log_z) + alpha * sum(t[a] - log_z for a in positives)
        expected.append(-term / (beta + alpha * len(positives)))
    as_t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    loss = paco_loss(as_t(logits), as_t(q), as_t(contrast), torch.tensor(labels), torch.tensor(contrast_labels),
                     as_t(log_prior), alpha=alpha, beta=beta, gamma=gamma, temperature=temp)
    assert loss.item() == pytest.approx(np.mean(expected), rel=1e-6)


def test_alpha_and_gamma_0_is_logit_adjusted_cross_entropy():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 3, 3, 2, 0])
    q = F.normalize(torch.randn(6, 8), dim=1)
    log_prior = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    contrast = torch.cat([q, F.normalize(torch.randn(10, 8), dim=1)])
    loss = paco_loss(logits, q, contrast, labels, torch.cat([labels, torch.randint(4, (10,))]), log_prior,
                     alpha=0.0, gamma=0.0)
    torch.testing.assert_close(loss, F.cross_entropy(logits + log_prior, labels))


def test_the_queue_is_first_in_first_out_and_needs_whole_batches():
    torch.manual_seed(0)
    queue = KeyQueue(size=6, dim=2, num_classes=3, batch=2)
    assert queue.keys.norm(dim=0).allclose(torch.ones(2))   # normalised along the K axis, as the reference
    for step in range(4):   # 8 keys into 6 slots: the first two pushed are gone
        queue.push(torch.full((2, 2), float(step)), torch.full((2,), step))
    assert queue.keys[:, 0].tolist() == [3, 3, 1, 1, 2, 2] and queue.labels.tolist() == [3, 3, 1, 1, 2, 2]
    assert int(queue.pointer) == 2
    with pytest.raises(ConfigError, match="whole number of global batches"):
        KeyQueue(size=1024, dim=32, num_classes=10, batch=100)


def test_momentum_update_formula():
    target, source = nn.Linear(3, 2), nn.Linear(3, 2)
    expected = [0.9 * t.detach() + 0.1 * s.detach() for t, s in zip(target.parameters(), source.parameters())]
    momentum_update(target, source, 0.9)
    for t, e in zip(target.parameters(), expected):
        torch.testing.assert_close(t.detach(), e)


class Toy(nn.Module):
    """A BatchNorm-free backbone (flatten, linear) under PaCo's heads, the MLP's BatchNorm aside."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3 * 8 * 8, 8)
        self.head = PaCoHeads(8, 3)
        self.head.projection[1] = nn.Identity()   # BatchNorm-free, for rho = 0 == SGD exactly

    def forward(self, x):
        return self.head(torch.tanh(self.body(x.flatten(1))))


def toy_method(update: str, rho: float = 0.05, overrides=()):
    torch.manual_seed(0)
    config = apply_overrides(get_recipe("digits-ce"), ["model.head=paco", "method.name=paco", "method.args.queue=8",
                                                        *overrides])
    labels = np.repeat(np.arange(3), [6, 3, 2])
    images = np.random.RandomState(0).randint(0, 256, (len(labels), 8, 8, 3)).astype(np.uint8)
    loader = DeviceLoader(images, labels, batch_size=4, mean=(0.5,) * 3, std=(0.25,) * 3,
                          augment=Augment(padding=1, flip=True))
    model = Toy()
    method = METHODS.build("paco", MethodParts(config, model, model, None, None, None,
                                               RunData(loader, loader, [6, 3, 2], 3, {}), torch.device("cpu")))
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    method.update = (SGDUpdate(sgd, autocast=nullcontext) if update == "sgd" else
                     SAMUpdate(SAM(sgd, rho=rho), model, autocast=nullcontext, freeze_bn=False))
    method.start_epoch(1)
    return method, model


def test_a_sam_step_keeps_keys_and_queue_across_its_passes_and_enqueues_and_updates_once(monkeypatch):
    method, model = toy_method("sam")
    key_encoder, queue = method.extra["key_encoder"], method.extra["queue"]
    weights_at_w = [p.detach().clone() for p in model.parameters()]
    keys_before = [p.detach().clone() for p in key_encoder.parameters()]
    contrasts = []
    real_loss = paco_loss

    def spy(*args, **kwargs):
        contrasts.append(args[2][4:].detach().clone())   # the keys and the queue of this pass
        return real_loss(*args, **kwargs)

    monkeypatch.setattr("tailsam.methods.paco.paco_loss", spy)
    pointer, queue_before = int(queue.pointer), queue.keys.clone()
    method.step(next(iter(method.batches)))
    assert len(contrasts) == 2 and torch.equal(contrasts[0], contrasts[1])   # same keys, same queue snapshot
    assert torch.equal(contrasts[0][4:], queue_before)
    assert int(queue.pointer) == (pointer + 4) % 8                            # one enqueue of 4 keys
    # One momentum update, from the weights at w (before the perturbation): 0.999 k + 0.001 w.
    for k_after, k_before, w in zip(key_encoder.parameters(), keys_before, weights_at_w):
        torch.testing.assert_close(k_after.detach(), 0.999 * k_before + 0.001 * w)


def test_sam_with_rho_0_is_exactly_a_paco_step():
    sgd_method, sgd_model = toy_method("sgd")
    sam_method, sam_model = toy_method("sam", rho=0.0)
    for method in (sgd_method, sam_method):
        torch.manual_seed(3)
        method.step(next(iter(method.batches)))
    for (name, a), b in zip(sgd_model.named_parameters(), sam_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7, msg=name)


def test_two_images_of_a_batch_get_independent_views_and_a_pass_again_gives_the_same():
    same = np.repeat(np.random.RandomState(1).randint(0, 256, (1, 32, 32, 3)).astype(np.uint8), 8, axis=0)
    loader = DeviceLoader(same, np.zeros(8), batch_size=8, mean=(0.5,) * 3, std=(0.25,) * 3, sampler="sequential")
    views = loader.with_view_transforms(paco_query_view(), simclr_key_view())
    (query, key), _ = next(iter(views))
    assert query.shape == key.shape == (8, 3, 32, 32)
    for view in (query, key):   # eight copies of one image, eight different draws
        assert len({tuple(v.flatten()[:64].tolist()) for v in view}) == 8
    assert not torch.equal(query, key)
    outer = torch.get_rng_state()
    again = loader.with_view_transforms(paco_query_view(), simclr_key_view())
    (query_again, key_again), _ = next(iter(again))   # the draws are the plan's, not the global generator's
    assert torch.equal(query, query_again) and torch.equal(key, key_again)
    assert torch.equal(torch.get_rng_state(), outer)


def test_cutout_blacks_out_one_clipped_square():
    torch.manual_seed(0)
    image = torch.full((3, 32, 32), 200, dtype=torch.uint8)
    holes = [(cutout(16)(image) == 0).all(0) for _ in range(20)]
    assert all(0 < h.sum() <= 256 and h.any(1).sum() * h.any(0).sum() == h.sum() for h in holes)
    assert any(h.sum() < 256 for h in holes)   # clipped at a border


def test_paco_refuses_settings_it_would_ignore():
    with pytest.raises(ConfigError, match="own loss and prior"):
        toy_method("sgd", overrides=["loss.name=ldam"])
    with pytest.raises(ConfigError, match="no setting tau"):
        toy_method("sgd", overrides=["method.args.tau=1"])
    with pytest.raises(ConfigError, match="alpha, beta, gamma >= 0"):
        toy_method("sgd", overrides=["method.args.gamma=-1"])
    with pytest.raises(ConfigError, match="sam.perturbation=global"):
        toy_method("sgd", overrides=["sam.kind=sam", "sam.perturbation=local"])


def paco_cifar(root: Path):
    """PaCo on a small generated CIFAR-10: ResNet-8, 3 epochs of 4 steps (batch 32), a queue of 64."""
    return apply_overrides(get_recipe("cifar10-ce:smoke"), [
        f"data.root={root}", "data.ratio=2", "data.n_max=48", "train.epochs=3", "train.eval_every=1",
        "model.head=paco", "method.name=paco", "method.args.queue=64", "train.tensorboard=false"])


def test_paco_trains_through_the_loop_and_resumes_exactly(tmp_path):
    rng = np.random.RandomState(0)
    np.savez(tmp_path / "cifar10.npz", x_train=rng.randint(0, 256, (500, 32, 32, 3), dtype=np.uint8),
             y_train=np.repeat(np.arange(10), 50), x_test=rng.randint(0, 256, (20, 32, 32, 3), dtype=np.uint8),
             y_test=np.repeat(np.arange(10), 2))
    config = paco_cifar(tmp_path)
    train(config, tmp_path / "whole", verbose=False)
    with pytest.raises(RunInterrupted):
        train(config, tmp_path / "resumed", verbose=False, on_step=stop_at(2, 1))
    train(config, tmp_path / "resumed", verbose=False)
    assert_same_run(tmp_path / "resumed", tmp_path / "whole")
    states = [torch.load(Path(tmp_path / run / "checkpoints" / "last.pt"), weights_only=True)["method"]
              for run in ("whole", "resumed")]
    assert {"queue.keys", "queue.labels", "queue.pointer"} <= set(states[0])
    # The frozen key encoder is not among the optimizer's parameters: the model's alone are.
    state = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)
    trained = sum(1 for key in state["model"] if "running_" not in key and "num_batches" not in key)
    assert len(state["optimizer"]["param_groups"][0]["params"]) == trained
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
