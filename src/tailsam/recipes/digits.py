"""Recipes on the built-in digits data (8x8 grey, made long-tailed): the demo and the tests.

ResNet-8 (one block per stage), imbalance ratio 10 (classes of 120 down to 12
images), batch 64, 30 epochs of the paper's schedule scaled down: 2 warm-up
epochs, DRW and the lr drop after epoch 20, fp32. A run takes seconds on a CPU.
"""

from __future__ import annotations

from tailsam.config import Config, DataConfig, LossConfig, ModelConfig, OptimConfig, SamConfig, TrainConfig
from tailsam.recipes.methods import METHODS, Method
from tailsam.recipes.registry import RECIPES

EPOCHS, DRW_START = 30, 20


def digits_config(method: Method) -> Config:
    return Config(
        data=DataConfig(dataset="digits", profile="exp", ratio=10.0, seed=0),
        model=ModelConfig(name="resnet8", head=method.head),
        loss=LossConfig(name=method.loss, weighting=method.weighting, drw_start=DRW_START),
        optim=OptimConfig(lr=0.1, batch_size=64, lr_schedule="paper_cifar",
                          lr_args={"warmup_epochs": 2, "decay_epochs": [DRW_START, EPOCHS - 3]}),
        sam=SamConfig(kind="sam" if method.sam else "none", rho=0.5 if method.sam else 0.05),
        train=TrainConfig(epochs=EPOCHS, eval_every=5, precision="fp32", channels_last=False),
    )


def _register(name: str, method: Method) -> None:
    def recipe() -> Config:
        return digits_config(method)

    recipe.__doc__ = (f"Digits-LT (ratio 10) {name.upper().replace('-', '+')}.\n\n"
                      f"    tailsam train digits-{name} --out runs/digits-{name}\n\n"
                      "No paper figure (demo data). Runtime: seconds on a CPU.")
    RECIPES.register(f"digits-{name}", paper_top1={})(recipe)


for _name, _method in METHODS.items():
    _register(_name, _method)
