"""Recipes on the built-in digits data (8x8 grey, made long-tailed): the demo and the tests.

ResNet-8 (one block per stage), imbalance ratio 20 (classes of 120 down to 6
images), batch 64, 60 epochs of the paper's schedule scaled down: 2 warm-up
epochs, DRW and lr x0.01 after epoch 40, x0.0001 after 57; SAM rho 0.2 (the
best of 0.2/0.5/0.8 in a one-seed sweep), fp32. A run takes seconds on a CPU.
"""

from __future__ import annotations

from tailsam.config import Config, DataConfig, LossConfig, ModelConfig, OptimConfig, SamConfig, TrainConfig
from tailsam.recipes.methods import METHODS, Method
from tailsam.recipes.registry import RECIPES

EPOCHS, DRW_START = 60, 40


def digits_config(method: Method) -> Config:
    return Config(
        data=DataConfig(dataset="digits", profile="exp", ratio=20.0, seed=0),
        model=ModelConfig(name="resnet8", head=method.head),
        loss=LossConfig(name=method.loss, weighting=method.weighting, drw_start=DRW_START),
        optim=OptimConfig(lr=0.1, batch_size=64, lr_schedule="paper_cifar",
                          lr_args={"warmup_epochs": 2, "decay_epochs": [DRW_START, EPOCHS - 3]}),
        sam=SamConfig(kind="sam" if method.sam else "none", rho=0.2),
        train=TrainConfig(epochs=EPOCHS, eval_every=10, channels_last=False),
    )


def _register(name: str, method: Method) -> None:
    def recipe() -> Config:
        return digits_config(method)

    recipe.__doc__ = (f"Digits-LT (ratio 20) {name.upper().replace('-', '+')}.\n\n"
                      f"    tailsam train digits-{name} --out runs/digits-{name}\n\n"
                      "No paper figure (demo data). Runtime: seconds on a CPU.")
    RECIPES.register(f"digits-{name}", paper_top1={})(recipe)


for _name, _method in METHODS.items():
    _register(_name, _method)
