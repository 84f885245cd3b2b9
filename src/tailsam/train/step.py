"""One training update, written out: `sgd_step` (one pass) and `sam_step` (two passes).

Both return the loss and the logits of the pass at the current weights w,
detached and still on the device: the caller accumulates them there, so a step
never waits for the host.

Under DistributedDataParallel (`model` wrapped in it) every backward pass
averages the gradients over the processes, so SAM's perturbation comes from
the global-batch gradient: the same step as one process with the global
batch. `local_perturbation=True` runs the first pass under `no_sync`, so each
process perturbs along its own piece's gradient (m-sharpness with m = the
per-process batch, Foret et al. 2021); the second pass is averaged as usual.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager

import torch
from torch import nn

from tailsam.optim import SAM, frozen_bn_stats

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Autocast = Callable[[], ContextManager]  # a fresh autocast context per forward pass


def sgd_step(model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer,
             images: torch.Tensor, labels: torch.Tensor, *, autocast: Autocast,
             scaler: torch.amp.GradScaler | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, backward and one base-optimizer update at w."""
    with autocast():
        logits = model(images)
        loss = loss_fn(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)   # skipped when the fp16 gradients are not finite
        scaler.update()
    return loss.detach(), logits.detach()


def sam_step(model: nn.Module, loss_fn: LossFn, optimizer: SAM,
             images: torch.Tensor, labels: torch.Tensor, *, autocast: Autocast,
             freeze_bn: bool, scaler: torch.amp.GradScaler | None = None,
             local_perturbation: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM: gradient at w, move to w + e, gradient there, back to w and step with it."""
    optimizer.zero_grad(set_to_none=True)
    # no_sync must hold over the forward and the backward of the pass it keeps local.
    with model.no_sync() if local_perturbation else nullcontext():
        with autocast():
            logits = model(images)
            loss = loss_fn(logits, labels)
        (loss if scaler is None else scaler.scale(loss)).backward()
    # A copy: under CUDA graphs (train.compile=reduce-overhead) the pass at w + e reuses the memory
    # of this pass's outputs.
    logits = logits.detach().clone()
    if not optimizer.first_step(zero_grad=True, scaler=scaler):
        return loss.detach(), logits   # fp16 overflow: both steps skipped, scaler updated

    # The batch already moved the BatchNorm statistics once at w; optionally keep the
    # perturbed pass from moving them again (the paper's code lets it).
    with frozen_bn_stats(model) if freeze_bn else nullcontext(), autocast():
        loss_at_e = loss_fn(model(images), labels)
    (loss_at_e if scaler is None else scaler.scale(loss_at_e)).backward()
    optimizer.second_step(zero_grad=True, scaler=scaler)
    return loss.detach(), logits
