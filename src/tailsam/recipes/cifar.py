"""CIFAR-10-LT and CIFAR-100-LT recipes (Rangwani et al. 2022, Table 1 setting).

ResNet-32, batch 128, SGD momentum 0.9, weight decay 2e-4, lr 0.1 with 5
warm-up epochs and x0.01 after epoch 160 and 180, 200 epochs, DRW from the
161st epoch, exp profile at imbalance ratio 100 (override data.ratio=10/50/200).
rho per method and dataset as in the paper's run script; VS and LA with SAM
have no published rho, so they take the CE+DRW value (overridable: sam.rho=...).
SAM's perturbed pass updates BatchNorm statistics, as in the paper's code
(sam.freeze_bn=true keeps them out). LDAM trains on the cosine ("normed")
head, as in the LDAM-DRW code (the loss's registered head).
"""

from __future__ import annotations

from typing import Callable

from tailsam.config import Config, DataConfig, LossConfig, ModelConfig, OptimConfig, SamConfig, TrainConfig
from tailsam.losses import LOSSES
from tailsam.recipes.registry import recipe

# rho by dataset and by the method without SAM (loss, plus "-drw" with DRW), from the paper's run script.
RHO = {
    "cifar10": {"ce": 0.1, "ce-drw": 0.5, "ldam-drw": 0.8, "vs": 0.5, "la": 0.5},
    "cifar100": {"ce": 0.2, "ce-drw": 0.8, "ldam-drw": 0.8, "vs": 0.8, "la": 0.8},
}

# The :smoke variants, on top of recipes.registry.smoke: a check in seconds on a CPU that the setup
# learns. Two epochs of ResNet-32 on ~250 images of ratio 100 stayed at chance (10%), with the loss
# rising under SAM; so: ratio 10 on ~1,200 images, ResNet-8, batch 32, 6 epochs, DRW from the 4th
# and the lr x0.01 for the 6th; SAM's rho rises linearly from 0.05 to the recipe's (a large rho from
# the first step kept CIFAR-100 at chance). Every CIFAR smoke recipe then reaches at least twice chance
# on the real data (tests/test_real_data.py, opt-in).
SMOKE_DATA = {"cifar10": ["data.n_max=300", "data.test_per_class=100"],
              "cifar100": ["data.n_max=30", "data.test_per_class=20"]}
SMOKE = ["data.ratio=10", "model.name=resnet8", "optim.batch_size=32", "train.epochs=6", "loss.drw_start=3",
         "optim.lr_args.decay_epochs=5,6"]


def smoke_overrides(config: Config) -> list[str]:
    """The :smoke overrides of a CIFAR recipe (see SMOKE): rho ramps up to the recipe's own."""
    ramp = ["sam.rho_schedule=linear", "sam.rho_args.min_rho=0.05", f"sam.rho_args.max_rho={config.sam.rho}",
            "sam.rho_args.epochs=6"] if config.sam.kind != "none" else []
    return SMOKE + SMOKE_DATA[config.data.dataset] + ramp


def cifar(dataset: str, loss: str, *, weighting: str = "none", sam: bool = False) -> Config:
    """The paper's CIFAR-LT setting for `loss` (ce, ldam, vs, la) with `weighting` (none, drw), SAM or not."""
    base = f"{loss}-drw" if weighting == "drw" else loss
    return Config(
        data=DataConfig(dataset=dataset, profile="exp", ratio=100.0, seed=0),
        model=ModelConfig(name="resnet32", head=LOSSES.get(loss).info.head),
        loss=LossConfig(name=loss, weighting=weighting, drw_start=160),
        optim=OptimConfig(lr=0.1, momentum=0.9, weight_decay=2e-4, batch_size=128, lr_schedule="paper_cifar",
                          lr_args={"warmup_epochs": 5, "decay_epochs": [160, 180]}),
        sam=SamConfig(kind="sam" if sam else "none", rho=RHO[dataset][base], freeze_bn=False),
        train=TrainConfig(epochs=200, eval_every=10),
    )


def cifar_recipe(paper_top1: dict[float, float] | None = None) -> Callable:
    """@recipe with the CIFAR :smoke overrides."""
    return recipe(paper_top1=paper_top1, smoke_overrides=smoke_overrides)


# --- CIFAR-10-LT -------------------------------------------------------------------------------


@cifar_recipe()
def cifar10_ce() -> Config:
    """CIFAR-10-LT CE, ResNet-32 (no figure in the paper).

        tailsam train cifar10-ce --out runs/cifar10-ce

    Runtime: 200 epochs, about 1 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar10", "ce")


@cifar_recipe()
def cifar10_ce_sam() -> Config:
    """CIFAR-10-LT CE+SAM, ResNet-32 (no figure in the paper).

        tailsam train cifar10-ce-sam --out runs/cifar10-ce-sam

    Runtime: 200 epochs, about 1.5 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar10", "ce", sam=True)


@cifar_recipe()
def cifar10_ce_drw() -> Config:
    """CIFAR-10-LT CE+DRW, ResNet-32 (no figure in the paper).

        tailsam train cifar10-ce-drw --out runs/cifar10-ce-drw

    Runtime: 200 epochs, about 1 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar10", "ce", weighting="drw")


@cifar_recipe(paper_top1={100: 80.6})
def cifar10_ce_drw_sam() -> Config:
    """CIFAR-10-LT CE+DRW+SAM, ResNet-32 (the paper's Table 1: 80.6% at ratio 100).

        tailsam train cifar10-ce-drw-sam --out runs/cifar10-ce-drw-sam

    Runtime: 200 epochs, about 1.5 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar10", "ce", weighting="drw", sam=True)


@cifar_recipe()
def cifar10_ldam_drw() -> Config:
    """CIFAR-10-LT LDAM+DRW, ResNet-32 (no figure in the paper).

        tailsam train cifar10-ldam-drw --out runs/cifar10-ldam-drw

    Runtime: 200 epochs, about 1 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar10", "ldam", weighting="drw")


@cifar_recipe(paper_top1={100: 81.9, 10: 89.4, 200: 78.1})
def cifar10_ldam_drw_sam() -> Config:
    """CIFAR-10-LT LDAM+DRW+SAM, ResNet-32 (the paper's Table 1: 81.9% at ratio 100, 89.4% at 10, 78.1% at 200).

        tailsam train cifar10-ldam-drw-sam --out runs/cifar10-ldam-drw-sam

    Runtime: 200 epochs, about 1.5 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar10", "ldam", weighting="drw", sam=True)


@cifar_recipe()
def cifar10_vs() -> Config:
    """CIFAR-10-LT VS, ResNet-32 (no figure in the paper).

        tailsam train cifar10-vs --out runs/cifar10-vs

    Runtime: 200 epochs, about 1 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar10", "vs")


@cifar_recipe(paper_top1={100: 82.4})
def cifar10_vs_sam() -> Config:
    """CIFAR-10-LT VS+SAM, ResNet-32 (the paper's Table 1: 82.4% at ratio 100).

        tailsam train cifar10-vs-sam --out runs/cifar10-vs-sam

    Runtime: 200 epochs, about 1.5 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar10", "vs", sam=True)


@cifar_recipe()
def cifar10_la() -> Config:
    """CIFAR-10-LT LA, ResNet-32 (no figure in the paper).

        tailsam train cifar10-la --out runs/cifar10-la

    Runtime: 200 epochs, about 1 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar10", "la")


@cifar_recipe()
def cifar10_la_sam() -> Config:
    """CIFAR-10-LT LA+SAM, ResNet-32 (no figure in the paper).

        tailsam train cifar10-la-sam --out runs/cifar10-la-sam

    Runtime: 200 epochs, about 1.5 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar10", "la", sam=True)

# --- CIFAR-100-LT ------------------------------------------------------------------------------


@cifar_recipe()
def cifar100_ce() -> Config:
    """CIFAR-100-LT CE, ResNet-32 (no figure in the paper).

        tailsam train cifar100-ce --out runs/cifar100-ce

    Runtime: 200 epochs, about 1 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar100", "ce")


@cifar_recipe()
def cifar100_ce_sam() -> Config:
    """CIFAR-100-LT CE+SAM, ResNet-32 (no figure in the paper).

        tailsam train cifar100-ce-sam --out runs/cifar100-ce-sam

    Runtime: 200 epochs, about 1.5 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar100", "ce", sam=True)


@cifar_recipe()
def cifar100_ce_drw() -> Config:
    """CIFAR-100-LT CE+DRW, ResNet-32 (no figure in the paper).

        tailsam train cifar100-ce-drw --out runs/cifar100-ce-drw

    Runtime: 200 epochs, about 1 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar100", "ce", weighting="drw")


@cifar_recipe(paper_top1={100: 44.6})
def cifar100_ce_drw_sam() -> Config:
    """CIFAR-100-LT CE+DRW+SAM, ResNet-32 (the paper's Table 1: 44.6% at ratio 100).

        tailsam train cifar100-ce-drw-sam --out runs/cifar100-ce-drw-sam

    Runtime: 200 epochs, about 1.5 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar100", "ce", weighting="drw", sam=True)


@cifar_recipe()
def cifar100_ldam_drw() -> Config:
    """CIFAR-100-LT LDAM+DRW, ResNet-32 (no figure in the paper).

        tailsam train cifar100-ldam-drw --out runs/cifar100-ldam-drw

    Runtime: 200 epochs, about 1 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar100", "ldam", weighting="drw")


@cifar_recipe(paper_top1={100: 45.4})
def cifar100_ldam_drw_sam() -> Config:
    """CIFAR-100-LT LDAM+DRW+SAM, ResNet-32 (the paper's Table 1: 45.4% at ratio 100).

        tailsam train cifar100-ldam-drw-sam --out runs/cifar100-ldam-drw-sam

    Runtime: 200 epochs, about 1.5 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar100", "ldam", weighting="drw", sam=True)


@cifar_recipe()
def cifar100_vs() -> Config:
    """CIFAR-100-LT VS, ResNet-32 (no figure in the paper).

        tailsam train cifar100-vs --out runs/cifar100-vs

    Runtime: 200 epochs, about 1 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar100", "vs")


@cifar_recipe(paper_top1={100: 46.6})
def cifar100_vs_sam() -> Config:
    """CIFAR-100-LT VS+SAM, ResNet-32 (the paper's Table 1: 46.6% at ratio 100).

        tailsam train cifar100-vs-sam --out runs/cifar100-vs-sam

    Runtime: 200 epochs, about 1.5 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar100", "vs", sam=True)


@cifar_recipe()
def cifar100_la() -> Config:
    """CIFAR-100-LT LA, ResNet-32 (no figure in the paper).

        tailsam train cifar100-la --out runs/cifar100-la

    Runtime: 200 epochs, about 1 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar100", "la")


@cifar_recipe()
def cifar100_la_sam() -> Config:
    """CIFAR-100-LT LA+SAM, ResNet-32 (no figure in the paper).

        tailsam train cifar100-la-sam --out runs/cifar100-la-sam

    Runtime: 200 epochs, about 1.5 h on a 2-core CPU with bf16 units, minutes on one GPU; the :smoke variant, seconds.
    """
    return cifar("cifar100", "la", sam=True)
