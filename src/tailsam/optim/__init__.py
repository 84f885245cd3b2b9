"""Optimizers and schedules: SAM/ASAM around any torch optimizer, lr and rho schedules."""

from tailsam.optim.batchnorm import frozen_bn_stats
from tailsam.optim.sam import SAM, SAM_KINDS
from tailsam.optim.schedules import (
    LR_SCHEDULES,
    RHO_SCHEDULES,
    ConstantRho,
    CosineLR,
    LinearRho,
    Schedule,
    StepDecayLR,
    StepRho,
    apply_schedules,
    build_lr_schedule,
    build_rho_schedule,
)

__all__ = [
    "SAM_KINDS",
    "LR_SCHEDULES",
    "RHO_SCHEDULES",
    "SAM",
    "ConstantRho",
    "CosineLR",
    "LinearRho",
    "Schedule",
    "StepDecayLR",
    "StepRho",
    "apply_schedules",
    "build_lr_schedule",
    "build_rho_schedule",
    "frozen_bn_stats",
]
