"""PaCo and PaCo+SAM recipes (Cui et al. 2021; the SAM paper's CIFAR-100-LT PaCo+SAM rows), ResNet-32.

SGD momentum 0.9, weight decay 5e-4, batch 128 (whole batches only: the queue takes them), 400 epochs,
lr 0.05 with PaCo's ramp: 0.05 k / 10 in 1-indexed epochs k <= 11, 0.05 to epoch 321, x0.1 to 361,
x0.01 after; alpha 0.01, beta 1, gamma 1, T 0.05, a queue of 1024 keys, momentum 0.999; the views of
tailsam.data.views. With SAM: rho 0.05 (the paper's is unpublished), the perturbed pass updates BatchNorm
statistics as every reference does. Evaluated every epoch (the classifier without the prior).
"""

from __future__ import annotations

from typing import Callable

from tailsam.config import (
    Config, DataConfig, LossConfig, MethodConfig, ModelConfig, OptimConfig, SamConfig, TrainConfig,
)
from tailsam.recipes.registry import recipe

# The :smoke variants: ResNet-8, ratio 10 on ~1,200 images, batch 32, 6 epochs (a 1-epoch ramp, whose
# one epoch past the ramp runs at 2x the base lr, as the reference's rule gives; x0.1 for the 5th and 6th),
# a queue of 256 keys.
SMOKE_DATA = {"cifar10": ("data.n_max=300", "data.test_per_class=100"),
              "cifar100": ("data.n_max=30", "data.test_per_class=20")}
SMOKE = ("data.ratio=10", "model.name=resnet8", "optim.batch_size=32", "train.epochs=6", "method.args.queue=256",
         "optim.lr_args.ramp_epochs=1", "optim.lr_args.milestones=4,")


def paco(dataset: str, *, ratio: int, sam: bool) -> Config:
    """PaCo's CIFAR setting on `dataset` at imbalance `ratio`, SAM or not."""
    return Config(
        data=DataConfig(dataset=dataset, profile="exp", ratio=float(ratio), seed=0),
        model=ModelConfig(name="resnet32", head="paco"),
        loss=LossConfig(name="ce"),   # PaCo's loss is its own (losses/paco.py)
        optim=OptimConfig(lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=128, lr_schedule="paco",
                          lr_args={"ramp_epochs": 10, "milestones": [321, 361]}),
        sam=SamConfig(kind="sam" if sam else "none", rho=0.05, freeze_bn=False),
        method=MethodConfig(name="paco", args={"alpha": 0.01, "beta": 1.0, "gamma": 1.0, "temperature": 0.05,
                                               "queue": 1024, "momentum": 0.999}),
        train=TrainConfig(epochs=400, eval_every=1),
    )


def paco_recipe(paper_top1: dict[float, float] | None = None) -> Callable:
    """@recipe with the PaCo :smoke overrides."""
    return recipe(paper_top1=paper_top1, smoke_overrides=lambda config: SMOKE + SMOKE_DATA[config.data.dataset])



@paco_recipe()
def cifar100_paco() -> Config:
    """CIFAR-100-LT ratio 100, PaCo, ResNet-32 (the PaCo paper's 52.0% at ratio 100 is unverified here).

        tailsam train cifar100-paco --out runs/cifar100-paco

    Runtime: 400 epochs; not measured on a GPU; see benchmarks/method_steps.py for this machine's
    projection. The :smoke variant takes seconds.
    """
    return paco("cifar100", ratio=100, sam=False)


@paco_recipe(paper_top1={100: 53.0})
def cifar100_paco_sam() -> Config:
    """CIFAR-100-LT ratio 100, PaCo+SAM, ResNet-32 (the SAM paper: 53.0%).
    rho 0.05: the SAM paper does not publish its PaCo+SAM rho.

        tailsam train cifar100-paco-sam --out runs/cifar100-paco-sam

    Runtime: 400 epochs; not measured on a GPU; see benchmarks/method_steps.py for this machine's
    projection. The :smoke variant takes seconds.
    """
    return paco("cifar100", ratio=100, sam=True)


@paco_recipe()
def cifar100_paco_r200() -> Config:
    """CIFAR-100-LT ratio 200, PaCo, ResNet-32 (no figure in the papers).

        tailsam train cifar100-paco-r200 --out runs/cifar100-paco-r200

    Runtime: 400 epochs; not measured on a GPU; see benchmarks/method_steps.py for this machine's
    projection. The :smoke variant takes seconds.
    """
    return paco("cifar100", ratio=200, sam=False)


@paco_recipe(paper_top1={200: 48.0})
def cifar100_paco_sam_r200() -> Config:
    """CIFAR-100-LT ratio 200, PaCo+SAM, ResNet-32 (the SAM paper: 48.0%).
    rho 0.05: the SAM paper does not publish its PaCo+SAM rho.

        tailsam train cifar100-paco-sam-r200 --out runs/cifar100-paco-sam-r200

    Runtime: 400 epochs; not measured on a GPU; see benchmarks/method_steps.py for this machine's
    projection. The :smoke variant takes seconds.
    """
    return paco("cifar100", ratio=200, sam=True)


@paco_recipe()
def cifar10_paco() -> Config:
    """CIFAR-10-LT ratio 100, PaCo, ResNet-32 (our extrapolation: PaCo publishes no CIFAR-10 recipe).

        tailsam train cifar10-paco --out runs/cifar10-paco

    Runtime: 400 epochs; not measured on a GPU; see benchmarks/method_steps.py for this machine's
    projection. The :smoke variant takes seconds.
    """
    return paco("cifar10", ratio=100, sam=False)


@paco_recipe()
def cifar10_paco_sam() -> Config:
    """CIFAR-10-LT ratio 100, PaCo+SAM, ResNet-32 (our extrapolation: PaCo publishes no CIFAR-10 recipe).
    rho 0.05: the SAM paper does not publish its PaCo+SAM rho.

        tailsam train cifar10-paco-sam --out runs/cifar10-paco-sam

    Runtime: 400 epochs; not measured on a GPU; see benchmarks/method_steps.py for this machine's
    projection. The :smoke variant takes seconds.
    """
    return paco("cifar10", ratio=100, sam=True)
