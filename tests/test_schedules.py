import math

import pytest
import torch

from tailsam.errors import ConfigError
from tailsam.optim import (
    LR_SCHEDULES,
    RHO_SCHEDULES,
    SAM,
    apply_schedules,
    build_lr_schedule,
    build_rho_schedule,
)

# One working set of arguments per registered name: a new schedule must add one here.
LR_EXAMPLES = {
    "paper_cifar": {},
    "step": {"base_lr": 0.1, "milestones": (2, 4)},
    "cosine": {"base_lr": 0.2, "epochs": 6, "warmup_epochs": 1, "steps_per_epoch": 3},
    "paco": {"base_lr": 0.05},
    "cc_sam": {"base_lr": 0.1},
}
RHO_EXAMPLES = {
    "constant": {"rho": 0.8},
    "step": {},
    "rho_steps": {"values": (0.05, 0.1, 0.5, 0.5)},
    "linear": {"min_rho": 0.05, "max_rho": 0.8, "epochs": 10},
    "after": {"rho": 0.8, "start": 160},
}


def test_every_registered_schedule_has_an_example():
    assert sorted(LR_EXAMPLES) == LR_SCHEDULES.names()
    assert sorted(RHO_EXAMPLES) == RHO_SCHEDULES.names()


@pytest.mark.parametrize("name", LR_SCHEDULES.names())
def test_lr_schedules_build_by_name(name):
    schedule = build_lr_schedule(name, **LR_EXAMPLES[name])
    assert all(schedule(epoch) > 0 for epoch in (1, 2, 3))


@pytest.mark.parametrize("name", RHO_SCHEDULES.names())
def test_rho_schedules_build_by_name(name):
    schedule = build_rho_schedule(name, **RHO_EXAMPLES[name])
    assert all(schedule(epoch) >= 0 for epoch in (1, 2, 3))


@pytest.mark.parametrize(
    "epoch, lr",
    [(1, 0.02), (5, 0.1), (6, 0.1), (160, 0.1), (161, 0.001), (180, 0.001), (181, 0.00001), (200, 0.00001)],
)
def test_paper_cifar_lr(epoch, lr):
    assert build_lr_schedule("paper_cifar")(epoch) == pytest.approx(lr, rel=1e-12)


@pytest.mark.parametrize("epoch, lr", [(1, 0.005), (10, 0.05), (11, 0.055), (12, 0.05), (321, 0.05), (322, 0.005),
                                       (361, 0.005), (362, 0.0005), (400, 0.0005)])
def test_paco_lr_in_1_indexed_epochs(epoch, lr):   # METHODS.md 3.4, converted from its 0-indexed epochs
    assert build_lr_schedule("paco", base_lr=0.05)(epoch) == pytest.approx(lr, rel=1e-12)


def test_paper_cifar_lr_is_set_once_per_epoch():
    schedule = build_lr_schedule("paper_cifar")
    assert schedule(3, step=0) == schedule(3, step=97)


def test_step_lr_matches_torch_multistep():
    schedule = build_lr_schedule("step", base_lr=0.5, milestones=(3, 5), gamma=0.2)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    torch_schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[3, 5], gamma=0.2)
    for epoch in range(1, 8):  # torch counts epochs from 0
        assert schedule(epoch) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
        optimizer.step()
        torch_schedule.step()


def test_cosine_per_epoch_matches_torch_cosine_annealing():
    schedule = build_lr_schedule("cosine", base_lr=0.2, epochs=10, min_lr=0.01)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    torch_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10, eta_min=0.01)
    for epoch in range(1, 11):
        assert schedule(epoch) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
        optimizer.step()
        torch_schedule.step()


def test_cosine_warmup_and_decay_per_step():
    schedule = build_lr_schedule("cosine", base_lr=0.2, epochs=3, warmup_epochs=1, steps_per_epoch=4)
    assert [schedule(1, step) for step in range(4)] == pytest.approx([0.05, 0.1, 0.15, 0.2])
    assert schedule(2, 0) == pytest.approx(0.2)  # the cosine starts at base_lr
    halfway = 0.2 * 0.5 * (1 + math.cos(math.pi * 4 / 8))
    assert schedule(3, 0) == pytest.approx(halfway)
    values = [schedule(epoch, step) for epoch in (2, 3) for step in range(4)]
    assert values == sorted(values, reverse=True) and values[-1] > 0
    with pytest.raises(ValueError, match="steps_per_epoch"):
        schedule(1, 4)
    with pytest.raises(ValueError, match="past"):
        schedule(4)


@pytest.mark.parametrize(
    "epoch, rho", [(1, 0.05), (5, 0.05), (6, 0.1), (160, 0.1), (161, 0.5), (180, 0.5), (181, 0.6), (200, 0.6)]
)
def test_paper_step_rho(epoch, rho):
    assert build_rho_schedule("step")(epoch) == rho


@pytest.mark.parametrize(
    "epoch, rho",
    [(1, 0.01), (5, 0.01), (6, 0.02), (60, 0.02), (61, 0.03), (75, 0.03), (76, 0.04), (90, 0.04)],
)
def test_rho_steps_over_four_ranges(epoch, rho):
    assert build_rho_schedule("rho_steps", values=(0.01, 0.02, 0.03, 0.04))(epoch) == rho


def test_rho_steps_boundaries_are_parameters():
    schedule = build_rho_schedule("rho_steps", values=(1, 2, 3, 4), boundaries=(1, 2, 3))
    assert [schedule(epoch) for epoch in (1, 2, 3, 4, 5)] == [1, 2, 3, 4, 4]


def test_linear_rho_runs_from_min_at_the_first_to_max_at_the_last_epoch():
    schedule = build_rho_schedule("linear", min_rho=0.1, max_rho=0.5, epochs=5)
    assert [schedule(epoch) for epoch in range(1, 6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    with pytest.raises(ValueError, match="past"):
        schedule(6)


def test_constant_rho():
    schedule = build_rho_schedule("constant", rho=0.8)
    assert schedule(1) == schedule(200) == 0.8


def test_epochs_are_one_indexed():
    with pytest.raises(ValueError, match="1-indexed"):
        build_rho_schedule("constant", rho=0.1)(0)


@pytest.mark.parametrize(
    "build, name, kwargs, message",
    [
        (build_rho_schedule, "constant", {"rho": -0.1}, "rho"),
        (build_rho_schedule, "rho_steps", {"values": (0.1, 0.2)}, "3 boundaries"),
        (build_rho_schedule, "step", {"boundaries": (5, 180, 160)}, "increasing"),
        (build_rho_schedule, "linear", {"min_rho": 0.8, "max_rho": 0.1, "epochs": 5}, "above max_rho"),
        (build_rho_schedule, "linear", {"min_rho": 0.1}, "epochs"),
        (build_rho_schedule, "cosine", {}, "unknown rho schedule"),
        (build_lr_schedule, "step", {"base_lr": 0.0}, "base_lr"),
        (build_lr_schedule, "cosine", {"base_lr": 0.1, "epochs": 5, "warmup_epochs": 5}, "warmup_epochs"),
        (build_lr_schedule, "cosine", {"base_lr": 0.1, "epochs": 5, "min_lr": 0.2}, "min_lr"),
        (build_lr_schedule, "paper_cifar", {"base": 0.1}, "base"),
    ],
)
def test_bad_parameters_raise_config_errors(build, name, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build(name, **kwargs)


def test_apply_schedules_sets_every_group_and_returns_the_values():
    first, second = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    sam = SAM(torch.optim.SGD([{"params": [first]}, {"params": [second]}], lr=1.0))
    lr, rho = build_lr_schedule("paper_cifar"), build_rho_schedule("step")
    assert apply_schedules(sam, 161, lr=lr, rho=rho) == {"lr": pytest.approx(0.001), "rho": 0.5}
    for group in sam.base_optimizer.param_groups:
        assert group["lr"] == pytest.approx(0.001) and group["rho"] == 0.5


def test_apply_schedules_keeps_a_tensor_lr_a_tensor():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=torch.tensor(0.1))
    apply_schedules(optimizer, 1, lr=build_lr_schedule("paper_cifar"))
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)
    assert optimizer.param_groups[0]["lr"].item() == pytest.approx(0.02)


def test_a_rho_schedule_needs_sam():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ConfigError, match="wrap it in SAM"):
        lr, rho = build_lr_schedule("paper_cifar"), build_rho_schedule("constant", rho=0.1)
        apply_schedules(optimizer, 1, lr=lr, rho=rho)
    assert optimizer.param_groups[0]["lr"] == 0.1, "nothing is written when the check fails"


def test_after_rho_is_zero_through_its_start_epoch():
    rho = build_rho_schedule("after", rho=0.8, start=160)
    assert [rho(e) for e in (1, 160, 161, 200)] == [0.0, 0.0, 0.8, 0.8]


def test_cosine_stepped_first_trains_each_epoch_at_the_next_epochs_value():
    ours, stepped = (build_lr_schedule("cosine", base_lr=0.01, epochs=200, stepped_first=first) for first in (False, True))
    assert [stepped(e) for e in (1, 100, 199)] == pytest.approx([ours(e + 1) for e in (1, 100, 199)])
    assert stepped(200) == 0.0 and stepped(1) == pytest.approx(0.005 * (1 + math.cos(math.pi / 200)))
