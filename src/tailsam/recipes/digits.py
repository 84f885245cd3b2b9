"""Recipes on the built-in digits data (8x8 grey, made long-tailed): the demo and the tests.

ResNet-8 (one block per stage), imbalance ratio 20 (classes of 120 down to 6
images), batch 64, 60 epochs of the paper's schedule scaled down: 2 warm-up
epochs, DRW and lr x0.01 after epoch 40, x0.0001 after 57; SAM rho 0.2 (the
best of 0.2/0.5/0.8 in a one-seed sweep), fp32. A run takes seconds on a CPU.
"""

from __future__ import annotations

from tailsam.config import Config, DataConfig, LossConfig, ModelConfig, OptimConfig, SamConfig, TrainConfig
from tailsam.losses import LOSSES
from tailsam.recipes.registry import recipe

EPOCHS, DRW_START = 60, 40


def digits(loss: str, *, weighting: str = "none", sam: bool = False) -> Config:
    """The digits setting for `loss` with `weighting` (none, drw), SAM or not."""
    return Config(
        data=DataConfig(dataset="digits", profile="exp", ratio=20.0, seed=0),
        model=ModelConfig(name="resnet8", head=LOSSES.get(loss).info.head),
        loss=LossConfig(name=loss, weighting=weighting, drw_start=DRW_START),
        optim=OptimConfig(lr=0.1, batch_size=64, lr_schedule="paper_cifar",
                          lr_args={"warmup_epochs": 2, "decay_epochs": [DRW_START, EPOCHS - 3]}),
        sam=SamConfig(kind="sam" if sam else "none", rho=0.2),
        train=TrainConfig(epochs=EPOCHS, eval_every=10, channels_last=False),
    )


@recipe()
def digits_ce() -> Config:
    """Digits-LT (ratio 20) CE, ResNet-8 (demo data: no paper figure).

        tailsam train digits-ce --out runs/digits-ce

    Runtime: seconds on a CPU, the :smoke variant less.
    """
    return digits("ce")


@recipe()
def digits_ce_sam() -> Config:
    """Digits-LT (ratio 20) CE+SAM, ResNet-8 (demo data: no paper figure).

        tailsam train digits-ce-sam --out runs/digits-ce-sam

    Runtime: seconds on a CPU, the :smoke variant less.
    """
    return digits("ce", sam=True)


@recipe()
def digits_ce_drw() -> Config:
    """Digits-LT (ratio 20) CE+DRW, ResNet-8 (demo data: no paper figure).

        tailsam train digits-ce-drw --out runs/digits-ce-drw

    Runtime: seconds on a CPU, the :smoke variant less.
    """
    return digits("ce", weighting="drw")


@recipe()
def digits_ce_drw_sam() -> Config:
    """Digits-LT (ratio 20) CE+DRW+SAM, ResNet-8 (demo data: no paper figure).

        tailsam train digits-ce-drw-sam --out runs/digits-ce-drw-sam

    Runtime: seconds on a CPU, the :smoke variant less.
    """
    return digits("ce", weighting="drw", sam=True)


@recipe()
def digits_ldam_drw() -> Config:
    """Digits-LT (ratio 20) LDAM+DRW, ResNet-8 (demo data: no paper figure).

        tailsam train digits-ldam-drw --out runs/digits-ldam-drw

    Runtime: seconds on a CPU, the :smoke variant less.
    """
    return digits("ldam", weighting="drw")


@recipe()
def digits_ldam_drw_sam() -> Config:
    """Digits-LT (ratio 20) LDAM+DRW+SAM, ResNet-8 (demo data: no paper figure).

        tailsam train digits-ldam-drw-sam --out runs/digits-ldam-drw-sam

    Runtime: seconds on a CPU, the :smoke variant less.
    """
    return digits("ldam", weighting="drw", sam=True)


@recipe()
def digits_vs() -> Config:
    """Digits-LT (ratio 20) VS, ResNet-8 (demo data: no paper figure).

        tailsam train digits-vs --out runs/digits-vs

    Runtime: seconds on a CPU, the :smoke variant less.
    """
    return digits("vs")


@recipe()
def digits_vs_sam() -> Config:
    """Digits-LT (ratio 20) VS+SAM, ResNet-8 (demo data: no paper figure).

        tailsam train digits-vs-sam --out runs/digits-vs-sam

    Runtime: seconds on a CPU, the :smoke variant less.
    """
    return digits("vs", sam=True)


@recipe()
def digits_la() -> Config:
    """Digits-LT (ratio 20) LA, ResNet-8 (demo data: no paper figure).

        tailsam train digits-la --out runs/digits-la

    Runtime: seconds on a CPU, the :smoke variant less.
    """
    return digits("la")


@recipe()
def digits_la_sam() -> Config:
    """Digits-LT (ratio 20) LA+SAM, ResNet-8 (demo data: no paper figure).

        tailsam train digits-la-sam --out runs/digits-la-sam

    Runtime: seconds on a CPU, the :smoke variant less.
    """
    return digits("la", sam=True)
