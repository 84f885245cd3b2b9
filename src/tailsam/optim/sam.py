"""Sharpness-Aware Minimization (SAM, Foret et al. 2021) and adaptive SAM (ASAM, Kwon et al. 2021).

SAM wraps any torch optimizer: it moves the weights to the worst nearby point
w + e, lets the caller compute the gradient there, moves back to w and lets the
base optimizer step with that gradient.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from tailsam.errors import ConfigError

# sam.kind: plain SGD, SAM, or adaptive SAM (ASAM, Kwon et al. 2021).
SAM_KINDS = ("none", "sam", "asam")

# Keys SAM adds to every param group; a group may set its own values.
_SAM_GROUP_KEYS = ("rho", "adaptive", "eta")


class SAM(torch.optim.Optimizer):
    """Sharpness-Aware Minimization around an existing optimizer.

    ``SAM(base_optimizer, rho=0.05)`` shares ``base_optimizer.param_groups``
    (the same list of the same dicts), so torch lr schedulers, our schedules and
    per-group settings reach the base optimizer unchanged. Each group also holds
    ``rho`` (radius), ``adaptive`` (ASAM) and ``eta``; a group passed to the base
    optimizer with its own ``"rho"`` keeps it.

    The perturbation uses one norm over all parameters of all groups:

    - SAM: ``e = rho * g / ||g||``
    - ASAM: ``e = rho * T^2 g / ||T g||`` with ``T = |w| + eta`` elementwise.
      ``eta = 0`` (the default) is the ``|w|`` form of davda54/sam; the ASAM
      paper uses ``eta = 0.01`` so that zero weights are perturbed too.

    A zero gradient gives ``e = 0`` (no NaN). Parameters whose ``.grad`` is
    None are neither perturbed nor stepped.

    The two passes in your own loop::

        optimizer = SAM(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                                        weight_decay=2e-4), rho=0.05)
        for x, y in loader:
            criterion(model(x), y).backward()        # gradient at w
            optimizer.first_step(zero_grad=True)     # w -> w + e
            with frozen_bn_stats(model):             # BN statistics moved in pass 1 already
                criterion(model(x), y).backward()    # gradient at w + e
            optimizer.second_step(zero_grad=True)    # back to w, base step

    or, after the first backward, ``optimizer.step(closure)`` where ``closure``
    runs the second forward and backward and returns its loss.

    Mixed precision: bf16 autocast needs nothing extra (parameters and their
    gradients stay fp32). With fp16 and ``torch.amp.GradScaler``, pass the
    scaler to both steps; ``first_step`` unscales the gradients before taking
    their norm and returns False when they are not finite, in which case both
    steps are skipped (weights and optimizer state untouched) and the scaler
    has already been updated::

        with torch.autocast("cuda", dtype=torch.float16):
            loss = criterion(model(x), y)
        scaler.scale(loss).backward()
        if optimizer.first_step(zero_grad=True, scaler=scaler):
            with frozen_bn_stats(model), torch.autocast("cuda", dtype=torch.float16):
                loss_at_e = criterion(model(x), y)
            scaler.scale(loss_at_e).backward()
            optimizer.second_step(zero_grad=True, scaler=scaler)

    ``state_dict()`` is the base optimizer's (momentum buffers, groups with
    rho), so checkpoints need no SAM-specific handling. Save and load between
    iterations, not between ``first_step`` and ``second_step``.
    """

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        adaptive: bool = False,
        eta: float = 0.0,
    ):
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(f"SAM wraps a torch.optim.Optimizer, got {type(base_optimizer).__name__}")
        self.base_optimizer = base_optimizer
        # Parameters moved by first_step and copies of their weights before the move.
        self._origins: tuple[list[Tensor], list[Tensor]] | None = None
        # Registers the base optimizer's own group dicts (see add_param_group).
        super().__init__(base_optimizer.param_groups, {"rho": rho, "adaptive": adaptive, "eta": eta})
        self.param_groups = base_optimizer.param_groups
        self.defaults = {**base_optimizer.defaults, **self.defaults}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the base optimizer too, filling in SAM's rho, adaptive and eta."""
        if not any(param_group is group for group in self.base_optimizer.param_groups):
            # The base optimizer applies its own defaults and appends to the shared list.
            self.base_optimizer.add_param_group(param_group)
        self._fill_sam_keys(param_group)

    def _fill_sam_keys(self, group: dict[str, Any]) -> None:
        for key in _SAM_GROUP_KEYS:
            group.setdefault(key, self.defaults[key])
        _check_group(group)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False, scaler: torch.amp.GradScaler | None = None) -> bool:
        """Move the weights from w to w + e using the gradient now in ``.grad``.

        With an enabled ``scaler`` the gradients are unscaled first; if they are
        not finite nothing moves, the scaler is updated and False is returned:
        skip the second pass and ``second_step``. Otherwise returns True.
        """
        if self._origins is not None:
            raise RuntimeError("SAM.first_step called twice: call second_step in between")
        if scaler is not None and not scaler.is_enabled():
            scaler = None
        if scaler is not None:
            scaler.unscale_(self)

        groups = [(group, [p for p in group["params"] if p.grad is not None]) for group in self.param_groups]
        groups = [(group, params) for group, params in groups if params]
        if not groups:
            raise RuntimeError("SAM.first_step found no gradients: call backward on the loss at w first")

        # Per group: the gradient and, for ASAM, T = |w| + eta; the norm is taken of T g.
        scales = [_asam_scale(group, params) if group["adaptive"] else None for group, params in groups]
        grads = [[p.grad for p in params] for _, params in groups]
        scaled_grads = [g if t is None else torch._foreach_mul(g, t) for g, t in zip(grads, scales)]
        norm = _global_norm([g for group_grads in scaled_grads for g in group_grads])

        if scaler is not None and not torch.isfinite(norm):
            scaler.update()
            if zero_grad:
                self.zero_grad()
            return False

        # A zero gradient has no ascent direction: leave the weights where they are.
        inv_norm = torch.where(norm > 0, 1.0 / norm, torch.zeros_like(norm))
        moved, origins = [], []
        for (group, params), scaled, scale in zip(groups, scaled_grads, scales):
            e = torch._foreach_mul(scaled, inv_norm * group["rho"])
            if scale is not None:
                torch._foreach_mul_(e, scale)  # T^2 g: one T from scaled, one here
            origins.extend(p.detach().clone() for p in params)
            torch._foreach_add_(params, e)
            moved.extend(params)
        self._origins = (moved, origins)
        if zero_grad:
            self.zero_grad()
        return True

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False, scaler: torch.amp.GradScaler | None = None) -> None:
        """Return to w and let the base optimizer step with the gradient computed at w + e.

        With an enabled ``scaler`` the base step goes through ``scaler.step``
        (skipped if the gradient at w + e is not finite) and the scaler is updated.
        """
        if self._origins is None:
            raise RuntimeError("SAM.second_step needs first_step before it")
        moved, origins = self._origins
        self._origins = None
        # Copy back rather than subtract e: (w + e) - e is not exactly w in floating point.
        torch._foreach_copy_(moved, origins)

        if scaler is not None and scaler.is_enabled():
            scaler.step(self.base_optimizer)
            scaler.update()
        else:
            self.base_optimizer.step()
        # torch lr schedulers only see calls to step(); mark the update for their order check.
        self._opt_called = True
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:
        """One SAM update; the gradient at w must already be in ``.grad``.

        ``closure`` runs the forward and backward pass at the perturbed weights
        and returns that loss, which ``step`` returns.
        """
        if closure is None:
            raise RuntimeError(
                "SAM.step needs a closure that recomputes the loss and calls backward; "
                "or call first_step and second_step yourself"
            )
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            loss = closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict; its param groups carry rho, adaptive and eta."""
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load into the base optimizer (a plain optimizer's state dict works too)."""
        self.base_optimizer.load_state_dict(state_dict)
        # Loading replaces the base optimizer's group list: share the new one.
        self.param_groups = self.base_optimizer.param_groups
        for group in self.param_groups:
            self._fill_sam_keys(group)


def _check_group(group: dict[str, Any]) -> None:
    rho, eta = group["rho"], group["eta"]
    if not (isinstance(rho, (int, float)) and math.isfinite(rho) and rho >= 0):
        raise ConfigError(f"SAM rho must be a finite number >= 0 (0 turns SAM off), got {rho!r}")
    if not (isinstance(eta, (int, float)) and math.isfinite(eta) and eta >= 0):
        raise ConfigError(f"SAM eta must be a finite number >= 0 (ASAM uses 0.01), got {eta!r}")
    if not isinstance(group["adaptive"], bool):
        raise ConfigError(f"SAM adaptive must be true or false, got {group['adaptive']!r}")


def _asam_scale(group: dict[str, Any], params: list[Tensor]) -> list[Tensor]:
    """T = |w| + eta, the elementwise scale of ASAM."""
    scale = torch._foreach_abs(params)
    if group["eta"]:
        torch._foreach_add_(scale, group["eta"])
    return scale


def _global_norm(tensors: list[Tensor]) -> Tensor:
    """The L2 norm of all tensors taken together, on the first tensor's device.

    Accumulated in at least fp32, so bf16/fp16 gradients do not lose the sum.
    """
    device = tensors[0].device
    dtype = torch.promote_types(tensors[0].dtype, torch.float32)
    norms = torch._foreach_norm(tensors)
    return torch.linalg.vector_norm(torch.stack([n.to(device, dtype) for n in norms]))
