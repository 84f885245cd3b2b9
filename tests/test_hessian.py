"""Checks of tailsam.hessian against dense Hessians of tiny models.

Every statistical tolerance below is a multiple of the estimator's standard
error, computed exactly from the dense matrix, so a failure means a biased
estimator, not bad luck (4 standard errors: about 6e-5 two-sided; the seeds
are fixed, so the tests are deterministic anyway).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from tailsam.errors import ConfigError
from tailsam.hessian import (
    DenseOperator,
    LossHessian,
    class_hessian,
    class_indices,
    class_spectrum,
    hutchinson_trace,
    hutchpp_trace,
    lanczos,
    stochastic_lanczos_quadrature,
)
from tailsam.hessian.hvp import _fp32_precision_switches

LABELS = torch.tensor([0, 1, 0, 2, 0, 1, 0, 2, 0, 1, 0, 0])  # counts 7, 3, 2: unequal on purpose


def tiny_mlp(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)


def tiny_cnn(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3)
    )
    batch_norm = model[1]
    # Running statistics away from their 0/1 defaults, so eval mode is distinguishable from train mode.
    batch_norm.running_mean.copy_(torch.tensor([0.3, -0.2]))
    batch_norm.running_var.copy_(torch.tensor([0.5, 2.0]))
    batch_norm.weight.data.copy_(torch.tensor([1.5, 0.7]))
    return model.to(dtype)


def inputs_for(model: nn.Module) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    shape = (len(LABELS), 4) if isinstance(model[0], nn.Linear) else (len(LABELS), 1, 5, 5)
    dtype = next(model.parameters()).dtype
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)


def dense_hessian(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The reference: torch.autograd.functional.hessian of the mean CE over the flat parameters."""
    names = [name for name, _ in model.named_parameters()]
    params = [p.detach() for p in model.parameters()]
    buffers = dict(model.named_buffers())
    was_training = model.training
    model.eval()

    def loss(flat: torch.Tensor) -> torch.Tensor:
        pieces, offset = {}, 0
        for name, p in zip(names, params):
            pieces[name] = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        return F.cross_entropy(functional_call(model, (pieces, buffers), (inputs,)), targets)

    flat = torch.cat([p.reshape(-1) for p in params])
    hessian = torch.autograd.functional.hessian(loss, flat)
    model.train(was_training)
    return hessian


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected.double()).norm() / expected.double().norm())


def rademacher_sample_variance(matrix: torch.Tensor) -> float:
    """Var(z^T H z) for Rademacher z: 2 (||H||_F^2 - sum_i H_ii^2)."""
    return 2 * float((matrix**2).sum() - (matrix.diagonal() ** 2).sum())


@pytest.mark.parametrize("make_model", [tiny_mlp, tiny_cnn], ids=["mlp", "cnn_batchnorm"])
@pytest.mark.parametrize("chunk_size", [256, 5], ids=["one_chunk", "chunked"])
@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_hvp_equals_dense_hessian_times_vector(make_model, chunk_size, method):
    model = make_model()
    x = inputs_for(model)
    operator = LossHessian(model, F.cross_entropy, x, LABELS, chunk_size=chunk_size, method=method)
    # Reference in float64 so that it measures the float32 operator's own error.
    expected_matrix = dense_hessian(make_model(torch.float64), x.double(), LABELS)
    assert operator.dim == expected_matrix.shape[0]
    generator = torch.Generator().manual_seed(2)
    for _ in range(3):
        vector = torch.randn(operator.dim, generator=generator)
        assert relative_error(operator(vector), expected_matrix @ vector.double()) < 1e-5


@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_hvp_is_deterministic_and_uses_eval_mode_without_changing_the_model(method):
    model = tiny_cnn(torch.float64).train()
    x = inputs_for(model)
    before = {name: t.clone() for name, t in model.state_dict().items()}
    operator = LossHessian(model, F.cross_entropy, x, LABELS, chunk_size=5, method=method)
    vector = torch.randn(operator.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    first = operator(vector)
    assert torch.equal(first, operator(vector))
    # dense_hessian evaluates in eval mode: a train-mode (batch statistics) product would differ.
    assert relative_error(first, dense_hessian(model, x, LABELS) @ vector) < 1e-10
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())


def test_products_run_in_exact_float32_and_restore_the_global_settings():
    cudnn = torch.backends.cudnn
    # The per-operator precision settings of PyTorch 2.9+, else the legacy flags.
    switches = _fp32_precision_switches()

    def precision_settings():
        if switches:
            return [switch.fp32_precision for switch in switches] + [cudnn.deterministic]
        return [cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, cudnn.deterministic]

    exact = ["ieee"] * len(switches) + [True] if switches else [False, False, True]
    seen = []

    def spying_loss(logits, targets):
        seen.append(precision_settings())
        return F.cross_entropy(logits, targets)

    saved_matmul = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")  # as fast training code does
    try:
        before = precision_settings()
        model = tiny_mlp()
        operator = LossHessian(model, spying_loss, inputs_for(model), LABELS)
        operator(torch.ones(operator.dim))
        assert seen and all(settings == exact for settings in seen)
        assert precision_settings() == before
        assert operator.method == "double_backward"  # "auto" on the CPU
    finally:
        torch.set_float32_matmul_precision(saved_matmul)


@pytest.mark.skipif(not _fp32_precision_switches(), reason="PyTorch before 2.9 has no per-operator precision")
def test_products_work_when_training_code_mixed_the_precision_apis():
    cudnn = torch.backends.cudnn
    saved = (cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision)
    # Different conv and RNN settings make reading the legacy cudnn.allow_tf32 raise.
    cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision = "tf32", "ieee"
    try:
        model = tiny_mlp()
        operator = LossHessian(model, F.cross_entropy, inputs_for(model), LABELS)
        operator(torch.ones(operator.dim))
        assert (cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision) == ("tf32", "ieee")
    finally:
        cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision = saved


def test_trainable_only_restricts_to_the_block_of_parameters_requiring_grad():
    model = tiny_mlp(torch.float64)
    x = inputs_for(model)
    model[0].weight.requires_grad_(False)
    frozen = model[0].weight.numel()
    full = dense_hessian(model, x, LABELS)
    operator = LossHessian(model, F.cross_entropy, x, LABELS)
    assert operator.dim == full.shape[0] - frozen
    assert operator.parameter_names == ["0.bias", "2.weight", "2.bias"]
    vector = torch.randn(operator.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    assert relative_error(operator(vector), full[frozen:, frozen:] @ vector) < 1e-10
    everything = LossHessian(model, F.cross_entropy, x, LABELS, trainable_only=False)
    assert everything.dim == full.shape[0]


def test_loss_and_accuracy_match_a_direct_evaluation():
    model = tiny_cnn()
    x = inputs_for(model)
    operator = LossHessian(model, F.cross_entropy, x, LABELS, chunk_size=5)
    loss, accuracy = operator.loss_and_accuracy()
    with torch.no_grad():
        logits = model.eval()(x)
    assert loss == pytest.approx(float(F.cross_entropy(logits, LABELS)), rel=1e-6)
    assert accuracy == float((logits.argmax(1) == LABELS).double().mean())


def test_lanczos_with_dim_steps_finds_the_extreme_eigenvalues():
    model = tiny_mlp(torch.float64)
    x = inputs_for(model)
    operator = LossHessian(model, F.cross_entropy, x, LABELS, chunk_size=5)
    exact = torch.linalg.eigvalsh(dense_hessian(model, x, LABELS))
    # A clearly negative lambda_min, so a relative comparison of it means something.
    assert exact[0] < -1e-3 * exact[-1]
    result = lanczos(operator, steps=operator.dim + 10, seed=0)
    assert result.steps <= operator.dim
    assert result.lambda_max == pytest.approx(float(exact[-1]), rel=1e-4)
    assert result.lambda_min == pytest.approx(float(exact[0]), rel=1e-4)
    assert torch.allclose(result.top_k(3), exact.flip(0)[:3], rtol=1e-4)
    assert float(result.ritz_weights.sum()) == pytest.approx(1.0, abs=1e-12)
    # The quadrature of f(t) = t is exactly v^T H v = T[0, 0].
    assert result.quadratic_form() == pytest.approx(float(result.alphas[0]), rel=1e-10)


def test_lanczos_breakdown_on_few_distinct_eigenvalues_is_exact():
    # Dimension 20, three distinct eigenvalues: the Krylov space is invariant after 3 steps.
    generator = torch.Generator().manual_seed(5)
    basis, _ = torch.linalg.qr(torch.randn(20, 20, generator=generator, dtype=torch.float64))
    eigenvalues = torch.tensor([-2.0] * 5 + [0.5] * 7 + [3.0] * 8, dtype=torch.float64)
    operator = DenseOperator(basis @ torch.diag(eigenvalues) @ basis.T)
    result = lanczos(operator, steps=50, seed=1)
    assert result.breakdown and result.steps == 3
    assert torch.allclose(result.ritz_values, torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64))
    # Each weight is the start vector's squared projection on that eigenspace.
    start = torch.randint(0, 2, (20, 1), generator=torch.Generator().manual_seed(1)).double()[:, 0] * 2 - 1
    projections = (basis.T @ (start / start.norm())) ** 2
    expected = torch.stack([projections[:5].sum(), projections[5:12].sum(), projections[12:].sum()])
    assert torch.allclose(result.ritz_weights, expected, atol=1e-10)
    zero = lanczos(DenseOperator(torch.zeros(4, 4)), steps=10)
    assert zero.steps == 1 and zero.lambda_max == 0.0


def test_lanczos_keeps_basis_on_the_cpu_when_asked():
    matrix = torch.diag(torch.linspace(-1.0, 4.0, 30, dtype=torch.float64))
    default = lanczos(DenseOperator(matrix), steps=30, seed=3)
    on_cpu = lanczos(DenseOperator(matrix), steps=30, seed=3, basis_device="cpu")
    assert torch.equal(default.ritz_values, on_cpu.ritz_values)
    assert default.lambda_min == pytest.approx(-1.0) and default.lambda_max == pytest.approx(4.0)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_slq_density_mean_equals_trace_over_dim(distribution):
    model = tiny_cnn(torch.float64)
    x = inputs_for(model)
    matrix = dense_hessian(model, x, LABELS)
    dim = matrix.shape[0]
    runs = 8
    density = stochastic_lanczos_quadrature(
        LossHessian(model, F.cross_entropy, x, LABELS), steps=20, runs=runs, seed=0, distribution=distribution
    )
    # One run's mean is v^T H v for a unit v; its variance, exactly:
    # Rademacher v = z / sqrt(d): Var = 2 (||H||_F^2 - sum H_ii^2) / d^2;
    # Gaussian v uniform on the sphere: Var = 2 (||H||_F^2 - tr(H)^2 / d) / (d (d + 2)).
    frobenius2, trace = float((matrix**2).sum()), float(matrix.trace())
    if distribution == "rademacher":
        variance = rademacher_sample_variance(matrix) / dim**2
    else:
        variance = 2 * (frobenius2 - trace**2 / dim) / (dim * (dim + 2))
    standard_error = math.sqrt(variance / runs)
    assert abs(density.mean() - trace / dim) < 4 * standard_error
    assert density.trace() == pytest.approx(dim * density.mean())

    exact = torch.linalg.eigvalsh(matrix)
    assert exact[0] - 1e-8 <= density.lambda_min and density.lambda_max <= exact[-1] + 1e-8
    grid, curve = density.smoothed()
    spacing = float(grid[1] - grid[0])
    assert float(curve.sum()) * spacing == pytest.approx(1.0, abs=1e-3)
    # Gaussian smoothing is symmetric, so the curve's mean is the nodes' mean.
    curve_mean = float((grid * curve).sum()) * spacing
    assert curve_mean == pytest.approx(density.mean(), abs=1e-3 * density.lambda_max)
    saved = density.as_dict(sigma=0.1, num_points=50)
    assert len(saved["grid"]) == 50 and len(saved["nodes"]) == runs and saved["sigma"] == 0.1


def test_hutchinson_agrees_with_exact_trace_within_its_standard_error():
    model = tiny_mlp(torch.float64)
    x = inputs_for(model)
    matrix = dense_hessian(model, x, LABELS)
    samples = 60
    estimate = hutchinson_trace(LossHessian(model, F.cross_entropy, x, LABELS), samples, seed=0)
    standard_error = math.sqrt(rademacher_sample_variance(matrix) / samples)
    assert abs(estimate.value - float(matrix.trace())) < 4 * standard_error
    assert estimate.matvecs == samples
    # The reported standard error estimates the exact one (60 samples: within a factor of 2).
    assert 0.5 * standard_error < estimate.standard_error < 2 * standard_error


def test_hutchpp_agrees_with_exact_trace_and_is_exact_with_a_full_sketch():
    generator = torch.Generator().manual_seed(6)
    dim = 40
    basis, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    # A decaying spectrum with negative eigenvalues, like a Hessian's outliers plus bulk.
    eigenvalues = 10.0 * 0.7 ** torch.arange(dim, dtype=torch.float64) - 0.05
    matrix = basis @ torch.diag(eigenvalues) @ basis.T
    operator = DenseOperator(matrix)
    budget = 30
    estimate = hutchpp_trace(operator, budget, seed=0)
    # The residual probes see (I-P) H (I-P), whose Frobenius norm is at most ||H||_F whatever the sketch:
    # with l residual probes, Var <= 2 ||H||_F^2 / l.
    residual_samples = budget - 2 * (budget // 3)
    bound = math.sqrt(2 * float((matrix**2).sum()) / residual_samples)
    assert abs(estimate.value - float(eigenvalues.sum())) < 4 * bound
    # On a decaying spectrum the deflation pays: far below Hutchinson's error at the same budget.
    hutchinson_error = math.sqrt(rademacher_sample_variance(matrix) / budget)
    assert estimate.standard_error < 0.1 * hutchinson_error
    exact = hutchpp_trace(operator, 3 * dim, seed=1)
    assert exact.value == pytest.approx(float(eigenvalues.sum()), rel=1e-10)


def test_count_weighted_class_hessians_sum_to_the_full_hessian():
    model = tiny_cnn(torch.float64)
    x = inputs_for(model)
    full = dense_hessian(model, x, LABELS)
    weighted = torch.zeros_like(full)
    vector = torch.randn(full.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    weighted_products = torch.zeros_like(vector)
    for class_id in range(3):
        members = LABELS == class_id
        share = float(members.sum()) / len(LABELS)
        weighted += share * dense_hessian(model, x[members], LABELS[members])
        operator = class_hessian(model, F.cross_entropy, x, LABELS, class_id, chunk_size=2)
        weighted_products += share * operator(vector)
    assert relative_error(weighted, full) < 1e-10
    full_operator = LossHessian(model, F.cross_entropy, x, LABELS, chunk_size=5)
    assert relative_error(weighted_products, full_operator(vector)) < 1e-10


def test_class_spectrum_summarises_one_class():
    model = tiny_mlp(torch.float64)
    x = inputs_for(model)
    members = LABELS == 0
    exact = torch.linalg.eigvalsh(dense_hessian(model, x[members], LABELS[members]))
    spectrum = class_spectrum(model, F.cross_entropy, x, LABELS, 0, steps=100, runs=2)
    assert spectrum.n_images == spectrum.n_available == 7
    assert spectrum.indices == tuple(torch.nonzero(members).flatten().tolist())
    assert spectrum.lambda_max == pytest.approx(float(exact[-1]), rel=1e-4)
    assert spectrum.lambda_min == pytest.approx(float(exact[0]), rel=1e-4)
    assert spectrum.eigenvalue_ratio == pytest.approx(spectrum.lambda_min / spectrum.lambda_max)
    assert 0.0 <= spectrum.negative_mass <= 1.0
    with torch.no_grad():
        logits = model(x[members])
    assert spectrum.loss == pytest.approx(float(F.cross_entropy(logits, LABELS[members])), rel=1e-10)
    assert spectrum.accuracy == float((logits.argmax(1) == 0).double().mean())
    summary = spectrum.as_dict()
    assert summary["dim"] == spectrum.dim
    assert summary["lanczos_steps"] == [run.steps for run in spectrum.density.runs]


def test_at_most_max_images_are_drawn_reproducibly_per_class():
    targets = torch.tensor([0, 1] * 50)
    chosen = class_indices(targets, 1, max_images=10, seed=3)
    assert len(chosen) == 10 and bool((targets[chosen] == 1).all())
    assert torch.equal(chosen, chosen.sort().values)
    assert torch.equal(chosen, class_indices(targets, 1, max_images=10, seed=3))
    assert not torch.equal(chosen, class_indices(targets, 1, max_images=10, seed=4))
    assert len(class_indices(targets, 1, max_images=500)) == 50
    model = tiny_mlp()
    x = torch.randn(100, 4)
    spectrum = class_spectrum(model, F.cross_entropy, x, targets, 1, steps=5, max_images=10, seed=3)
    assert spectrum.indices == tuple(chosen.tolist())
    assert (spectrum.n_images, spectrum.n_available) == (10, 50)


def test_bad_values_raise_config_errors():
    model = tiny_mlp()
    x = inputs_for(model)
    with pytest.raises(ConfigError, match="class 7"):
        class_hessian(model, F.cross_entropy, x, LABELS, 7)
    with pytest.raises(ConfigError, match="method"):
        LossHessian(model, F.cross_entropy, x, LABELS, method="finite_differences")
    with pytest.raises(ConfigError, match="chunk_size"):
        LossHessian(model, F.cross_entropy, x, LABELS, chunk_size=0)
    with pytest.raises(ConfigError, match="distribution"):
        lanczos(DenseOperator(torch.eye(3)), steps=2, distribution="uniform")
    with pytest.raises(ConfigError, match="max_images"):
        class_indices(LABELS, 0, max_images=0)
    with pytest.raises(ConfigError, match="at least 3"):
        hutchpp_trace(DenseOperator(torch.eye(3)), 2)
