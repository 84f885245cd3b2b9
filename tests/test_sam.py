import copy
import io
import warnings

import pytest
import torch
from torch import nn

from tailsam.errors import ConfigError
from tailsam.optim import SAM, frozen_bn_stats


def make_model(dtype=torch.float32, batchnorm=False):
    torch.manual_seed(0)
    layers = [nn.Linear(4, 3)]
    if batchnorm:
        layers += [nn.BatchNorm1d(3), nn.Linear(3, 2)]
    return nn.Sequential(*layers).to(dtype)


def make_batch(dtype=torch.float32):
    generator = torch.Generator().manual_seed(1)
    return torch.randn(8, 4, generator=generator, dtype=dtype), torch.randint(0, 2, (8,), generator=generator)


def loss_of(model, x, y):
    return nn.functional.cross_entropy(model(x), y)


def sgd(model, **kwargs):
    options = dict(lr=0.1, momentum=0.9, weight_decay=5e-4) | kwargs
    return torch.optim.SGD(model.parameters(), **options)


def sam_step(model, optimizer, x, y):
    loss_of(model, x, y).backward()
    optimizer.first_step(zero_grad=True)
    loss_of(model, x, y).backward()
    optimizer.second_step(zero_grad=True)


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


def assert_all_equal(left, right):
    assert len(left) == len(right)
    for a, b in zip(left, right):
        assert torch.equal(a, b)


def perturbation(model, optimizer, x, y):
    """e as applied by first_step (the weights are restored afterwards)."""
    before = weights(model)
    loss_of(model, x, y).backward()
    optimizer.first_step()
    e = [p.detach() - w for p, w in zip(model.parameters(), before)]
    grads = [p.grad.clone() for p in model.parameters()]
    optimizer.second_step(zero_grad=True)
    return e, grads, before


@pytest.mark.parametrize("adaptive", [False, True])
def test_rho_zero_equals_the_base_step(adaptive):
    x, y = make_batch()
    plain, wrapped = make_model(), make_model()
    base = sgd(plain)
    sam = SAM(sgd(wrapped), rho=0.0, adaptive=adaptive)
    for _ in range(2):  # the second step uses the momentum buffer
        loss_of(plain, x, y).backward()
        base.step()
        base.zero_grad()
        sam_step(wrapped, sam, x, y)
    assert_all_equal(weights(plain), weights(wrapped))


def test_perturbation_has_norm_rho_over_all_groups():
    model = make_model(dtype=torch.float64)
    x, y = make_batch(torch.float64)
    groups = [{"params": [model[0].weight]}, {"params": [model[0].bias], "lr": 0.01}]
    sam = SAM(torch.optim.SGD(groups, lr=0.1), rho=0.3)
    e, grads, _ = perturbation(model, sam, x, y)
    grad_norm = torch.cat([g.flatten() for g in grads]).norm()
    assert torch.cat([t.flatten() for t in e]).norm().item() == pytest.approx(0.3, rel=1e-12)
    for e_p, g in zip(e, grads):
        torch.testing.assert_close(e_p, 0.3 * g / grad_norm, rtol=1e-12, atol=1e-15)


def test_rho_per_group_with_one_global_norm():
    model = make_model(dtype=torch.float64)
    x, y = make_batch(torch.float64)
    groups = [{"params": [model[0].weight], "rho": 0.5}, {"params": [model[0].bias]}]
    sam = SAM(torch.optim.SGD(groups, lr=0.1), rho=0.05)
    e, grads, _ = perturbation(model, sam, x, y)
    grad_norm = torch.cat([g.flatten() for g in grads]).norm()
    torch.testing.assert_close(e[0], 0.5 * grads[0] / grad_norm, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(e[1], 0.05 * grads[1] / grad_norm, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("eta", [0.0, 0.01])
def test_asam_perturbation_matches_its_formula(eta):
    model = make_model(dtype=torch.float64)
    x, y = make_batch(torch.float64)
    sam = SAM(sgd(model), rho=0.5, adaptive=True, eta=eta)
    e, grads, w = perturbation(model, sam, x, y)
    scale = [w_p.abs() + eta for w_p in w]
    norm = torch.cat([(t * g).flatten() for t, g in zip(scale, grads)]).norm()
    for e_p, t, g in zip(e, scale, grads):
        torch.testing.assert_close(e_p, 0.5 * t**2 * g / norm, rtol=1e-12, atol=1e-15)


def test_second_step_is_the_base_step_from_w_with_the_gradient_at_w_plus_e():
    lr, momentum, weight_decay, rho = 0.1, 0.9, 5e-4, 0.2
    model = make_model(dtype=torch.float64)
    reference = copy.deepcopy(model)
    x, y = make_batch(torch.float64)
    sam = SAM(sgd(model, lr=lr, momentum=momentum, weight_decay=weight_decay), rho=rho)

    w = weights(reference)
    buffers = [torch.zeros_like(p) for p in w]
    for _ in range(2):
        sam_step(model, sam, x, y)
        g = torch.autograd.grad(loss_of(reference, x, y), list(reference.parameters()))
        norm = torch.cat([t.flatten() for t in g]).norm()
        with torch.no_grad():
            for p, w_p, g_p in zip(reference.parameters(), w, g):
                p.copy_(w_p + rho * g_p / norm)
        g_at_e = torch.autograd.grad(loss_of(reference, x, y), list(reference.parameters()))
        for i, g_p in enumerate(g_at_e):
            buffers[i] = momentum * buffers[i] + g_p + weight_decay * w[i]
            w[i] = w[i] - lr * buffers[i]
        with torch.no_grad():
            for p, w_p in zip(reference.parameters(), w):
                p.copy_(w_p)
    for got, expected in zip(weights(model), w):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)


def test_step_with_closure_equals_first_and_second_step():
    x, y = make_batch()
    manual, closed = make_model(), make_model()
    sam_manual, sam_closed = SAM(sgd(manual), rho=0.1), SAM(sgd(closed), rho=0.1)
    sam_step(manual, sam_manual, x, y)

    def closure():
        loss = loss_of(closed, x, y)
        loss.backward()
        return loss

    loss_of(closed, x, y).backward()
    assert torch.isfinite(sam_closed.step(closure))
    assert_all_equal(weights(manual), weights(closed))


def test_state_dict_round_trip_reproduces_the_next_step():
    x, y = make_batch()
    model = make_model()
    sam = SAM(sgd(model), rho=0.1, adaptive=True)
    sam_step(model, sam, x, y)

    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": sam.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    assert checkpoint["optimizer"]["state"], "momentum buffers must be saved"

    resumed = make_model()
    resumed.load_state_dict(checkpoint["model"])
    resumed_sam = SAM(sgd(resumed), rho=0.7)  # rho and adaptive come from the checkpoint
    resumed_sam.load_state_dict(checkpoint["optimizer"])
    assert resumed_sam.param_groups is resumed_sam.base_optimizer.param_groups
    assert resumed_sam.param_groups[0]["rho"] == 0.1 and resumed_sam.param_groups[0]["adaptive"]

    sam_step(model, sam, x, y)
    sam_step(resumed, resumed_sam, x, y)
    assert_all_equal(weights(model), weights(resumed))


def test_loading_a_plain_optimizer_state_fills_in_sam_defaults():
    model = make_model()
    plain_state = sgd(model).state_dict()
    sam = SAM(sgd(model), rho=0.3)
    sam.load_state_dict(plain_state)
    assert sam.param_groups[0]["rho"] == 0.3


def test_torch_lr_scheduler_drives_the_base_optimizer():
    x, y = make_batch()
    model = make_model()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.0)
    scheduler = torch.optim.lr_scheduler.StepLR(sam, step_size=1, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # includes torch's "scheduler.step() before optimizer.step()"
        sam_step(model, sam, x, y)
        scheduler.step()
    assert sam.base_optimizer.param_groups[0]["lr"] == 0.05

    before = weights(model)
    loss_of(model, x, y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    sam.zero_grad()
    sam_step(model, sam, x, y)
    for w, g, p in zip(before, grads, model.parameters()):
        torch.testing.assert_close(p.detach(), w - 0.05 * g)


def test_add_param_group_reaches_the_base_optimizer():
    model = make_model(batchnorm=True)
    sam = SAM(torch.optim.SGD(model[0].parameters(), lr=0.1, momentum=0.9), rho=0.2)
    sam.add_param_group({"params": model[2].parameters(), "rho": 0.4})
    assert len(sam.base_optimizer.param_groups) == 2
    assert sam.param_groups[1]["momentum"] == 0.9 and sam.param_groups[1]["rho"] == 0.4


@pytest.mark.parametrize("momentum", [0.1, None])
def test_frozen_bn_stats_keeps_only_the_first_pass_statistics(momentum):
    x, y = make_batch()
    model = make_model(batchnorm=True)
    model[1].momentum = momentum
    first_pass_only = copy.deepcopy(model)
    sam = SAM(sgd(model), rho=0.5)

    loss_of(model, x, y).backward()
    sam.first_step(zero_grad=True)
    with frozen_bn_stats(model):
        loss_of(model, x, y).backward()
    sam.second_step(zero_grad=True)
    first_pass_only(x)

    assert_all_equal(list(model[1].buffers()), list(first_pass_only[1].buffers()))
    assert model[1].track_running_stats and model[1].momentum == momentum


def test_zero_gradient_leaves_weights_finite_and_unperturbed():
    model = make_model()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.5, adaptive=True)
    before = weights(model)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    sam.first_step()
    assert_all_equal(weights(model), before)
    sam.second_step()
    assert_all_equal(weights(model), before)


def test_parameters_without_gradient_are_left_alone():
    x, y = make_batch()
    model = make_model(batchnorm=True)
    model[2].requires_grad_(False)  # frozen head: its .grad stays None
    sam = SAM(sgd(model), rho=0.5)
    head = weights(model[2])
    sam_step(model, sam, x, y)
    assert_all_equal(weights(model[2]), head)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def fp16_like_step(model, sam, scaler, x, y, poison_pass=None):
    """A scaled SAM step; poison_pass (1 or 2) puts an inf into that pass's gradient."""
    scaler.scale(loss_of(model, x, y)).backward()
    if poison_pass == 1:
        model[0].weight.grad[0, 0] = float("inf")
    if not sam.first_step(zero_grad=True, scaler=scaler):
        return False
    scaler.scale(loss_of(model, x, y)).backward()
    if poison_pass == 2:
        model[0].weight.grad[0, 0] = float("inf")
    sam.second_step(zero_grad=True, scaler=scaler)
    return True


def test_grad_scaler_step_equals_the_unscaled_step():
    x, y = make_batch()
    scaled, plain = make_model(), make_model()
    sam_scaled, sam_plain = SAM(sgd(scaled), rho=0.1), SAM(sgd(plain), rho=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    assert fp16_like_step(scaled, sam_scaled, scaler, x, y)
    sam_step(plain, sam_plain, x, y)
    # Scaling by a power of two and back is exact.
    assert_all_equal(weights(scaled), weights(plain))


@pytest.mark.parametrize("poison_pass", [1, 2])
def test_grad_scaler_skips_a_step_with_an_inf_gradient(poison_pass):
    x, y = make_batch()
    model = make_model()
    sam = SAM(sgd(model), rho=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    fp16_like_step(model, sam, scaler, x, y)  # builds momentum buffers
    before = weights(model)
    buffers = [sam.base_optimizer.state[p]["momentum_buffer"].clone() for p in model.parameters()]
    scale = scaler.get_scale()

    ran_second_pass = fp16_like_step(model, sam, scaler, x, y, poison_pass=poison_pass)

    assert ran_second_pass == (poison_pass == 2)
    assert_all_equal(weights(model), before)
    assert_all_equal([sam.base_optimizer.state[p]["momentum_buffer"] for p in model.parameters()], buffers)
    assert scaler.get_scale() == scale * scaler.get_backoff_factor()
    assert all(p.grad is None for p in model.parameters())
    assert fp16_like_step(model, sam, scaler, x, y), "the next step runs normally"


def test_misuse_raises_clear_errors():
    model = make_model()
    sam = SAM(sgd(model))
    with pytest.raises(RuntimeError, match="needs first_step"):
        sam.second_step()
    with pytest.raises(RuntimeError, match="no gradients"):
        sam.first_step()
    with pytest.raises(RuntimeError, match="closure"):
        sam.step()
    with pytest.raises(ConfigError, match="rho"):
        SAM(sgd(model), rho=-0.1)
    with pytest.raises(ConfigError, match="eta"):
        SAM(sgd(model), adaptive=True, eta=float("nan"))
    with pytest.raises(TypeError, match="wraps a torch.optim.Optimizer"):
        SAM(model.parameters())
