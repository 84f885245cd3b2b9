"""The weight updates, written out: `SGDUpdate` (one pass) and `SAMUpdate` (two passes).

An update takes a *loss pass*: a function that runs the forward pass(es) of
one batch and returns the loss to descend and the logits to score, and
optionally a third value: the loss SAM's ascent climbs when it is not the
whole loss (GLMC+SAM leaves its consistency term out of the ascent). It calls
the pass under autocast, once at w for SGD, at w and at w + e for SAM, so a
method decides what a pass computes (one view or several, extra heads, keys
from a queue) and the update decides how the weights move. Both return the
loss and logits of the pass at w, detached and still on the device: the
caller accumulates them there, so an update never waits for the host (the
CUDA-graph capture of a whole step relies on it).

Under DistributedDataParallel (`model` wrapped in it) every backward pass
averages the gradients over the processes, so SAM's perturbation comes from
the global-batch gradient: the same step as one process with the global
batch. `local_perturbation=True` runs the first pass under `no_sync`, so each
process perturbs along its own piece's gradient (m-sharpness with m = the
per-process batch, Foret et al. 2021); the second pass is averaged as usual.

`sgd_step` and `sam_step` are the two updates for plain classification
(`loss_fn(model(images), labels)`), for use in a loop of your own.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager

import torch
from torch import nn

from tailsam.optim import SAM, frozen_bn_stats

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Autocast = Callable[[], ContextManager]  # a fresh autocast context per forward pass
# -> (loss to descend, logits to score[, loss for SAM's ascent])
LossPass = Callable[[], tuple[torch.Tensor, ...]]


def classify(model: nn.Module, loss_fn: LossFn, images: torch.Tensor, labels: torch.Tensor) -> LossPass:
    """The loss pass of plain classification: `loss_fn(model(images), labels)` and the logits."""
    def loss_pass() -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(images)
        return loss_fn(logits, labels), logits

    return loss_pass


class SGDUpdate:
    """Forward, backward and one step of `optimizer` at w (with a GradScaler for fp16)."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, autocast: Autocast,
                 scaler: torch.amp.GradScaler | None = None):
        self.optimizer, self.autocast, self.scaler = optimizer, autocast, scaler

    def __call__(self, loss_pass: LossPass) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast():
            loss, logits, *_ = loss_pass()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)   # skipped when the fp16 gradients are not finite
            self.scaler.update()
        return loss.detach(), logits.detach()


class SAMUpdate:
    """SAM: gradient at w, move to w + e, gradient there, back to w and step with it.

    `model` is the module the passes run (for `freeze_bn` and `local_perturbation`). While every param
    group's rho is 0 (a rho schedule), the step is the base optimizer's SGD step: one pass, not two.
    """

    def __init__(self, optimizer: SAM, model: nn.Module, *, autocast: Autocast, freeze_bn: bool,
                 scaler: torch.amp.GradScaler | None = None, local_perturbation: bool = False):
        self.optimizer, self.model, self.autocast, self.scaler = optimizer, model, autocast, scaler
        self.freeze_bn, self.local_perturbation = freeze_bn, local_perturbation

    def __call__(self, loss_pass: LossPass) -> tuple[torch.Tensor, torch.Tensor]:
        optimizer, scaler = self.optimizer, self.scaler
        if all(group["rho"] == 0 for group in optimizer.param_groups):
            # e = 0: the pass at w + e would repeat the pass at w. Skipping it is what makes a rho
            # schedule that starts at 0 ("SAM after DRW") cost SGD's time until rho is switched on.
            return SGDUpdate(optimizer.base_optimizer, autocast=self.autocast, scaler=scaler)(loss_pass)
        optimizer.zero_grad(set_to_none=True)
        # no_sync must hold over the forward and the backward of the pass it keeps local.
        with self.model.no_sync() if self.local_perturbation else nullcontext():
            with self.autocast():
                loss, logits, *ascent = loss_pass()
            climbed = ascent[0] if ascent else loss
            (climbed if scaler is None else scaler.scale(climbed)).backward()
        # A copy: under CUDA graphs (train.compile=reduce-overhead) the pass at w + e reuses the memory
        # of this pass's outputs.
        logits = logits.detach().clone()
        if not optimizer.first_step(zero_grad=True, scaler=scaler):
            return loss.detach(), logits   # fp16 overflow: both steps skipped, scaler updated

        # The batch already moved the BatchNorm statistics once at w; optionally keep the
        # perturbed pass from moving them again (the paper's code lets it).
        with frozen_bn_stats(self.model) if self.freeze_bn else nullcontext(), self.autocast():
            loss_at_e = loss_pass()[0]
        (loss_at_e if scaler is None else scaler.scale(loss_at_e)).backward()
        optimizer.second_step(zero_grad=True, scaler=scaler)
        return loss.detach(), logits


class GroupedSAMUpdate:
    """Grouped SAM (../shared/METHODS.md section 0.5): the loss pass's per-group losses L_k come from one
    forward at w; the update direction is sum_k grad L_k(w + e_k) with e_k = rho_k grad L_k(w) / ||grad L_k(w)||,
    and no extra pass where rho_k = 0 or L_k has no gradient (a group with no sample in the batch); then the
    base optimizer steps at w. rho_k = scales[k] times the optimizer's current rho (its schedule), so SAM is
    one group with scale 1 and ImbSAM a head group with 0 and a tail group with 1. The loss pass returns
    (loss, logits, [L_1, ..., L_K]). Checking a group's gradient for zero waits for the host: not capturable.
    """

    def __init__(self, optimizer: SAM, model: nn.Module, *, scales: tuple[float, ...], autocast: Autocast,
                 freeze_bn: bool):
        self.optimizer, self.model, self.scales = optimizer, model, scales
        self.autocast, self.freeze_bn = autocast, freeze_bn

    def __call__(self, loss_pass: LossPass) -> tuple[torch.Tensor, torch.Tensor]:
        base = self.optimizer.base_optimizer
        params = [p for group in base.param_groups for p in group["params"] if p.requires_grad]
        rho = self.optimizer.param_groups[0]["rho"]
        with self.autocast():
            loss, logits, group_losses = loss_pass()
        logits = logits.detach().clone()
        # Every group's gradient at w first, from the one graph: a perturbed pass moves the weights in place,
        # after which that graph cannot be differentiated again.
        grads_at_w = [_grads(group_loss, params, retain_graph=k < len(group_losses) - 1)
                      for k, group_loss in enumerate(group_losses)]
        direction = [torch.zeros_like(p) for p in params]
        for k, (scale, grads) in enumerate(zip(self.scales, grads_at_w)):
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if scale * rho else None
            if norm is None or norm.item() == 0:   # no ascent: the group's gradient at w (zero if empty)
                torch._foreach_add_(direction, grads)
                continue
            origins = [p.detach().clone() for p in params]
            with torch.no_grad():
                torch._foreach_add_(params, torch._foreach_mul(grads, scale * rho / norm))
            with frozen_bn_stats(self.model) if self.freeze_bn else nullcontext(), self.autocast():
                perturbed = loss_pass()[2][k]
            torch._foreach_add_(direction, _grads(perturbed, params, retain_graph=False))
            with torch.no_grad():
                torch._foreach_copy_(params, origins)   # back to w exactly (not w + e - e)
        for p, g in zip(params, direction):
            p.grad = g
        base.step()
        base.zero_grad(set_to_none=True)
        return loss.detach(), logits


def _grads(loss: torch.Tensor, params: list[torch.Tensor], *, retain_graph: bool) -> list[torch.Tensor]:
    """d loss / d params, zeros where a parameter does not reach the loss."""
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def sgd_step(model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer,
             images: torch.Tensor, labels: torch.Tensor, *, autocast: Autocast = nullcontext,
             scaler: torch.amp.GradScaler | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD update of plain classification; returns the loss and logits at w (detached)."""
    return SGDUpdate(optimizer, autocast=autocast, scaler=scaler)(classify(model, loss_fn, images, labels))


def sam_step(model: nn.Module, loss_fn: LossFn, optimizer: SAM,
             images: torch.Tensor, labels: torch.Tensor, *, autocast: Autocast = nullcontext,
             freeze_bn: bool, scaler: torch.amp.GradScaler | None = None,
             local_perturbation: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One SAM update of plain classification; returns the loss and logits at w (detached)."""
    update = SAMUpdate(optimizer, model, autocast=autocast, freeze_bn=freeze_bn, scaler=scaler,
                       local_perturbation=local_perturbation)
    return update(classify(model, loss_fn, images, labels))
