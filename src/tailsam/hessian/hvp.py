"""Hessian-vector products of a model's mean loss over a fixed set of images.

The loss is `L(w) = (1/N) sum_i loss(f(x_i; w), y_i)` over the N given images,
as a function of the flat vector `w` of the model's (trainable) parameters,
with the model in eval mode and its buffers (BatchNorm running statistics)
held fixed. Products `H v` are computed chunk by chunk, so memory is bounded by
`chunk_size` images whatever N is, and summed in a fixed order. They are
computed in true float32 with deterministic cuDNN kernels (see
`exact_float32`), so the same inputs give the same bits on the CPU and, for
ordinary CNNs, on the GPU.

Two methods, through `torch.func.functional_call` on the flat parameter vector,
agree to 3e-7 relative in float32; which is faster depends on the device, so
`method="auto"` picks by device:
- "double_backward": `torch.autograd.grad` with `create_graph=True`, then a
  second `grad` against v. CPU, small BatchNorm CNN, 256 images, 2 threads:
  0.17 s per product against 0.20-0.22 s for forward-over-reverse.
- "forward_over_reverse": `torch.func.jvp` of `torch.func.grad`. H200,
  ResNet-32, 512 images, exact float32 and deterministic cuDNN: 0.22-0.28 s
  per product against 0.50 s for double backward (measured before the two
  changes below, which have not been timed on a GPU).

Two things make double-backward products cheaper without changing what they compute
(CPU, ResNet-32, 128 images, 1 thread: 2.6 s -> 1.6 s per product):
- In eval mode a BatchNorm layer is the affine map x * scale + shift, but
  autograd differentiates it twice through its training-mode formula (batch
  statistics): 30% of a product. `affine_batchnorm` computes the same map as
  an explicit multiply-add for the duration of a product.
- When all images fit in one chunk, the gradient's graph is built once and
  kept (`keep_graph`); each product is then only the second backward, 20%
  less. It holds no more memory than a single product builds anyway.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call

from tailsam.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
HVP_METHODS = ("auto", "double_backward", "forward_over_reverse")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode, then restore each one's own training flag."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Turn off TF32 and nondeterministic cuDNN kernels for the block, then restore the settings.

    PyTorch runs float32 convolutions on the GPU in TF32 by default (10-bit
    mantissa): on a ResNet-32 that put a 4e-4 relative error in each
    Hessian-vector product (4e-6 without), enough to blur eigenvalues near 0,
    which are exactly the ones the saddle-point diagnostic reads. Training code
    often enables TF32 matmuls too (`set_float32_matmul_precision("high")`).
    """
    cudnn = torch.backends.cudnn
    switches = _fp32_precision_switches()
    if switches:
        # PyTorch 2.9+ sets precision per operator; reading its legacy flags
        # raises once training code has mixed the two APIs, so they stay untouched.
        exact = [(switch, "fp32_precision", "ieee") for switch in switches]
    else:
        # Older PyTorch has only the legacy flags.
        exact = [(cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False)]
    exact.append((cudnn, "deterministic", True))
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in exact]
    for owner, name, value in exact:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


@contextlib.contextmanager
def affine_batchnorm(model: nn.Module) -> Iterator[None]:
    """Run eval-mode BatchNorm layers as x * scale + shift for the block, then restore their forward.

    scale = weight / sqrt(running_var + eps) and shift = bias - running_mean * scale
    are the same function of the weights, bias and input as eval-mode batch
    norm, equal to float32 roundoff, but autograd's second derivative of it is a
    plain multiply instead of the training-mode formula's reductions. Layers
    without running statistics (they normalise by the batch even in eval mode)
    are left as they are. Reads the module attributes at call time, so
    `functional_call`'s substituted parameters and buffers are the ones used.
    """
    layers = [
        module
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_var is not None
    ]
    # An instance attribute shadows the class's forward; keep any the module already had.
    saved = [(layer, layer.__dict__.get("forward")) for layer in layers]
    for layer in layers:
        layer.forward = _affine_batchnorm_forward.__get__(layer)
    try:
        yield
    finally:
        for layer, forward in saved:
            if forward is None:
                del layer.forward
            else:
                layer.forward = forward


def _affine_batchnorm_forward(layer: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    scale = torch.rsqrt(layer.running_var + layer.eps)
    if layer.weight is not None:
        scale = scale * layer.weight
    shift = -layer.running_mean * scale
    if layer.bias is not None:
        shift = shift + layer.bias
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * scale.view(shape) + shift.view(shape)


def _fp32_precision_switches() -> list:
    """The per-operator float32 precision settings (PyTorch 2.9+) present: GPU and CPU, matmul and conv."""
    backends = torch.backends
    mkldnn = getattr(backends, "mkldnn", None)
    candidates = [
        getattr(backends.cuda, "matmul", None),
        getattr(backends.cudnn, "conv", None),
        getattr(mkldnn, "matmul", None),
        getattr(mkldnn, "conv", None),
    ]
    return [switch for switch in candidates if switch is not None and hasattr(switch, "fp32_precision")]


class LossHessian:
    """The Hessian of the mean loss over `inputs`, as a matrix-free symmetric operator.

    Args:
        model: the classifier; its parameters and buffers are snapshotted
            here, so later training steps do not change this operator.
        loss_fn: `(logits, targets) -> scalar`, the *mean* loss over the batch.
            Chunks are combined with weights n_chunk / N, which is exact for a
            plain mean of per-image losses (any loss on one class's images,
            where class weights are all equal, is one).
        inputs, targets: the images and their labels. Keep them on the
            model's device to avoid a copy per chunk on every product.
        chunk_size: at most this many images go through the model at once.
        trainable_only: differentiate only parameters with `requires_grad`;
            the others are held fixed like buffers.
        method: "double_backward", "forward_over_reverse", or "auto": the
            faster one measured for the model's device (forward-over-reverse
            on CUDA, double backward elsewhere).
        keep_graph: keep the gradient's graph between double-backward
            products. Default (None): when all images fit in one chunk, where
            it costs no more peak memory than one product; with several
            chunks it would hold every chunk's graph at once.

    Attributes:
        dim: length of the flat parameter vector the Hessian acts on.
        parameter_names: the parameters, in the order they are flattened.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        chunk_size: int = 256,
        trainable_only: bool = True,
        method: str = "auto",
        keep_graph: bool | None = None,
    ):
        if method not in HVP_METHODS:
            choices = ", ".join(HVP_METHODS)
            raise ConfigError(f"unknown Hessian-vector product method {method!r}; choose one of: {choices}")
        if chunk_size < 1:
            raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
        if len(inputs) != len(targets):
            raise ConfigError(f"{len(inputs)} inputs but {len(targets)} targets; they must pair up")
        if len(inputs) == 0:
            raise ConfigError("the Hessian of a loss over no images is undefined; pass at least one image")
        varying = [
            (name, p) for name, p in model.named_parameters() if p.requires_grad or not trainable_only
        ]
        if not varying:
            raise ConfigError("the model has no parameters requiring grad; pass trainable_only=False")
        varying_names = {name for name, _ in varying}
        self.model = model
        self.loss_fn = loss_fn
        self.inputs = inputs
        self.targets = targets
        self.chunk_size = chunk_size
        self.parameter_names = [name for name, _ in varying]
        self._shapes = [p.shape for _, p in varying]
        self._sizes = [p.numel() for _, p in varying]
        self._fixed = {name: p.detach() for name, p in model.named_parameters() if name not in varying_names}
        # Copies, like the parameters: a kept graph must not see later updates of the running statistics.
        self._fixed.update({name: b.detach().clone() for name, b in model.named_buffers()})
        self.point = torch.cat([p.detach().reshape(-1) for _, p in varying])
        self.dim = self.point.numel()
        self.device = self.point.device
        self.dtype = self.point.dtype
        if method == "auto":
            method = "forward_over_reverse" if self.device.type == "cuda" else "double_backward"
        self.method = method
        if keep_graph is None:
            keep_graph = method == "double_backward" and len(inputs) <= chunk_size
        elif keep_graph and method != "double_backward":
            raise ConfigError(
                "keep_graph needs method='double_backward'; forward-over-reverse builds no graph to keep"
            )
        self.keep_graph = keep_graph
        self._graph: tuple[torch.Tensor, list[torch.Tensor]] | None = None  # (point, gradient per chunk)

    @property
    def num_images(self) -> int:
        return len(self.inputs)

    def __call__(self, vector: torch.Tensor) -> torch.Tensor:
        """`H @ vector` for a flat vector of length `dim` (on `device`, in `dtype`)."""
        if vector.shape != (self.dim,):
            raise ConfigError(f"vector must have shape ({self.dim},), got {tuple(vector.shape)}")
        if self.keep_graph:
            return self._product_from_kept_graph(vector)
        chunk_product = (
            self._forward_over_reverse if self.method == "forward_over_reverse" else self._double_backward
        )
        product = torch.zeros_like(self.point)
        with self._exact_eval(), torch.enable_grad():
            for x, y, weight in self._chunks():
                product += chunk_product(vector, x, y, weight)
        return product

    @torch.no_grad()
    def loss_and_accuracy(self) -> tuple[float, float]:
        """Mean loss and top-1 accuracy (fraction) over the images, at the snapshot."""
        loss = 0.0
        correct = 0
        with self._exact_eval():
            for x, y, weight in self._chunks():
                logits = self._logits(self.point, x)
                loss += float(self.loss_fn(logits, y)) * weight
                correct += int((logits.argmax(dim=1) == y).sum())
        return loss, correct / self.num_images

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of a flat vector as a name -> tensor dict shaped like the parameters."""
        pieces = flat.split(self._sizes)
        named = zip(self.parameter_names, pieces, self._shapes)
        return {name: piece.view(shape) for name, piece, shape in named}

    @contextlib.contextmanager
    def _exact_eval(self) -> Iterator[None]:
        """Eval mode, BatchNorm as its affine map, exact float32: the setting of every pass here."""
        with eval_mode(self.model), affine_batchnorm(self.model), exact_float32():
            yield

    def _product_from_kept_graph(self, vector: torch.Tensor) -> torch.Tensor:
        if self._graph is None:
            point = self.point.detach().requires_grad_(True)
            with self._exact_eval(), torch.enable_grad():
                gradients = [self._gradient(point, x, y, weight) for x, y, weight in self._chunks()]
            self._graph = (point, gradients)
        point, gradients = self._graph
        product = torch.zeros_like(self.point)
        # The graph was recorded in eval mode; the backward pass still needs exact float32 kernels.
        with exact_float32():
            for gradient in gradients:
                product += self._second_backward(gradient, point, vector, retain_graph=True)
        return product

    def _gradient(self, point: torch.Tensor, x: torch.Tensor, y: torch.Tensor, weight: float) -> torch.Tensor:
        loss = self.loss_fn(self._logits(point, x), y) * weight
        return torch.autograd.grad(loss, point, create_graph=True)[0]

    def _second_backward(
        self, gradient: torch.Tensor, point: torch.Tensor, vector: torch.Tensor, *, retain_graph: bool
    ) -> torch.Tensor:
        # A loss that is linear in w has a gradient that does not depend on w.
        if not gradient.requires_grad:
            return torch.zeros_like(self.point)
        return torch.autograd.grad(gradient, point, grad_outputs=vector, retain_graph=retain_graph)[0]

    def _double_backward(
        self, vector: torch.Tensor, x: torch.Tensor, y: torch.Tensor, weight: float
    ) -> torch.Tensor:
        point = self.point.detach().requires_grad_(True)
        return self._second_backward(self._gradient(point, x, y, weight), point, vector, retain_graph=False)

    def _forward_over_reverse(
        self, vector: torch.Tensor, x: torch.Tensor, y: torch.Tensor, weight: float
    ) -> torch.Tensor:
        def chunk_loss(flat: torch.Tensor) -> torch.Tensor:
            return self.loss_fn(self._logits(flat, x), y) * weight

        return torch.func.jvp(torch.func.grad(chunk_loss), (self.point,), (vector,))[1]

    def _logits(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, (self.unflatten(flat), self._fixed), (x,))

    def _chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
        """(inputs, targets, n_chunk / N) per chunk; the weights turn chunk means into the overall mean."""
        n = self.num_images
        for start in range(0, n, self.chunk_size):
            x = self.inputs[start : start + self.chunk_size].to(self.device)
            if x.is_floating_point():
                x = x.to(self.dtype)
            y = self.targets[start : start + self.chunk_size].to(self.device)
            yield x, y, len(x) / n
