"""SAM after DRW (issue 17): rho 0 until the DRW epoch, then the recipe's rho. A zero radius takes one pass
(the SGD step), a positive one two; the recipe's rho schedule switches exactly where DRW does."""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from tailsam.methods import SAMUpdate, SGDUpdate, classify
from tailsam.optim import SAM
from tailsam.optim.schedules import build_rho_schedule
from tailsam.recipes import get_recipe, recipe_with_overrides


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
