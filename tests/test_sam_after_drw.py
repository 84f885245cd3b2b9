"""SAM after DRW (issue 17): rho 0 until the DRW epoch, then the recipe's rho. A zero radius takes one pass
(the SGD step), a positive one two; the recipe's rho schedule switches exactly where DRW does."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tailsam.config import apply_overrides
from tailsam.errors import ConfigError
from tailsam.methods import SAMUpdate, SGDUpdate, classify
from tailsam.optim import SAM
from tailsam.recipes import get_recipe, recipe_with_overrides
from tailsam.run.build import build_schedules


def toy():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))


def counting(model, x, y):
    calls = []

    def loss_pass():
        calls.append(1)
        return classify(model, F.cross_entropy, x, y)()

    return loss_pass, calls


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)


def test_a_zero_radius_is_one_pass_and_the_sgd_step():
    torch.manual_seed(1)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    sam_model, sgd_model = toy(), toy()
    sam = SAM(sgd(sam_model), rho=0.0)
    sam_update = SAMUpdate(sam, sam_model, autocast=nullcontext, freeze_bn=False)
    sgd_update = SGDUpdate(sgd(sgd_model), autocast=nullcontext)
    for _ in range(2):   # twice, so that the momentum buffers take part
        loss_pass, calls = counting(sam_model, x, y)
        sam_update(loss_pass)
        assert len(calls) == 1
        sgd_update(classify(sgd_model, F.cross_entropy, x, y))
    for p, q in zip(sam_model.parameters(), sgd_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    sam.param_groups[0]["rho"] = 0.05   # switched on: two passes, and a different step
    loss_pass, calls = counting(sam_model, x, y)
    sam_update(loss_pass)
    sgd_update(classify(sgd_model, F.cross_entropy, x, y))
    assert len(calls) == 2
    assert not torch.equal(sam_model[0].weight, sgd_model[0].weight)


def test_the_recipes_rho_switches_on_with_drw_also_when_the_run_is_shortened():
    for overrides, drw_start in (([], 160), (["train.epochs=20"], 16)):
        config, _ = recipe_with_overrides("cifar10-ldam-drw-sam-after-drw", overrides)
        assert config.loss.drw_start == drw_start
        _, rho = build_schedules(config)
        assert [rho(drw_start), rho(drw_start + 1)] == [0.0, 0.8]
    smoke = get_recipe("cifar10-ldam-drw-sam-after-drw:smoke")
    assert [build_schedules(smoke)[1](e) for e in (3, 4)] == [0.0, 0.8]


def test_sam_after_drw_needs_drw_or_a_start_epoch():
    config = apply_overrides(get_recipe("cifar10-ce-sam"), ["sam.rho_schedule=after"])
    with pytest.raises(ConfigError, match="loss.weighting=drw"):
        build_schedules(config)
    _, rho = build_schedules(apply_overrides(config, ["sam.rho_args.start=5"]))
    assert [rho(5), rho(6)] == [0.0, config.sam.rho]
