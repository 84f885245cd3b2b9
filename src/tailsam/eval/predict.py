"""Run a model over a loader and collect its outputs, with no host sync per batch.

Each batch's output stays on the model's device and the batches are joined
once at the end, so a CUDA evaluation queues every batch without waiting for
the previous one; `.item()` or `.cpu()` inside the loop would stall it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode, then restore each one's own previous flag.

    Per-module restore rather than `model.train(was_training)`: a model trained
    with some submodules deliberately in eval mode (frozen BatchNorm) keeps them so.
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def predict(model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
            autocast_dtype: torch.dtype | None = None, keep_logits: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of `model` on every (images, labels) batch of `loader`, and the labels.

    The model runs in eval mode under `torch.inference_mode` (each submodule's
    train/eval flag is restored afterwards); batches are moved to the model's
    device. With `autocast_dtype` (e.g. torch.bfloat16) the forward pass runs
    under autocast. Returns, on the model's device, `(logits, labels)`: float32
    logits [N, C] and int64 labels [N]; with `keep_logits=False` the top-1
    predicted classes (int64 [N]) instead of the logits, which saves N x C
    floats when only accuracies are wanted (thousands of classes).
    Raises ValueError if the loader yields no batch.
    """
    device = model_device(model)
    # Asynchronous copies only towards an accelerator: a non-blocking copy to the
    # CPU may still be in flight when the host reads it.
    non_blocking = device.type != "cpu"
    outputs, labels = [], []
    with eval_mode(model), torch.inference_mode(), \
            torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        for images, targets in loader:
            logits = model(images.to(device, non_blocking=non_blocking))
            # float32 whatever autocast produced, so losses and ties see full-precision logits.
            outputs.append(logits.float() if keep_logits else logits.argmax(dim=1))
            labels.append(targets.to(device, dtype=torch.int64, non_blocking=non_blocking))
    if not outputs:
        raise ValueError("the evaluation loader yielded no batches; the test split is empty")
    return torch.cat(outputs), torch.cat(labels)


def gather_from_processes(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` of every process of the default process group, joined along dim 0 in rank order.

    The processes may hold different numbers of rows (the last shard of a test
    set is often shorter): each is padded to the longest for the all-gather and
    trimmed after it.
    """
    world_size = dist.get_world_size()
    rows = torch.tensor([len(tensor)], device=tensor.device)
    all_rows = [torch.empty_like(rows) for _ in range(world_size)]
    dist.all_gather(all_rows, rows)
    sizes = [int(n) for n in torch.cat(all_rows).tolist()]
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[:len(tensor)] = tensor
    pieces = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(pieces, padded)
    return torch.cat([piece[:n] for piece, n in zip(pieces, sizes)])
