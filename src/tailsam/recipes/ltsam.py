"""The long-tail SAM family on one footing (../shared/METHODS.md sections 5-8): ImbSAM, SSE-SAM, Focal-SAM,
CC-SAM and SAM after DRW, each on tailsam's ResNet-32 and the LDAM subset (data seed 0), with the method's
published hyper-parameters, reported at the final epoch.

Each published method also has a `:reference` variant with its code's own backbone, subset and schedule
(ImbSAM and SSE-SAM: the 21 M-parameter CIFAR ResNet-34, each class's first images, the cosine stepped
before each epoch; CC-SAM: BBN's ResNet-32 and the subset of numpy seed 42; Focal-SAM's reference setting
is the recipe itself). The published figures come from test-selected best epochs (ImbSAM and SSE-SAM
with flip test-time augmentation on top): expect tailsam's final-epoch numbers below them.
SAM's perturbed passes move BatchNorm statistics, as every reference's do (sam.freeze_bn=false).
"""

from __future__ import annotations

from typing import Callable

from tailsam.config import (
    Config, DataConfig, LossConfig, MethodConfig, ModelConfig, OptimConfig, SamConfig, TrainConfig,
)
from tailsam.recipes import cifar as cifar_recipes
from tailsam.recipes.registry import recipe

# ImbSAM's and SSE-SAM's code: CIFAR ResNet-34, first-n subset, the cosine stepped before each epoch.
RESNET34_FIRST_N = ("model.name=resnet34_cifar", "data.protocol=first-n", "optim.lr_args.stepped_first=true")
SMOKE_DATA = {"cifar10": ("data.n_max=300", "data.test_per_class=100"),
              "cifar100": ("data.n_max=30", "data.test_per_class=20")}
SMOKE = ("data.ratio=10", "model.name=resnet8", "optim.batch_size=32", "train.epochs=6")
# CC-SAM's :smoke: 4 epochs of stage 1 (warm-up 1, decays after 2 and 3), 2 of stage 2.
CC_SAM_SMOKE = ("optim.lr_args.stage_two_after=4", "optim.lr_args.warmup_epochs=1", "optim.lr_args.milestones=2,3")


def ltsam_recipe(*, reference: tuple[str, ...] | None, extra_smoke: tuple[str, ...] = ()) -> Callable:
    """@recipe with this family's :smoke overrides (ResNet-8, ratio 10 on ~1,200 images, 6 epochs)."""
    return recipe(reference=reference,
                  smoke_overrides=lambda config: SMOKE + SMOKE_DATA[config.data.dataset] + extra_smoke)


def cosine_ce(dataset: str, *, method: str, rho: float, args: dict) -> Config:
    """ImbSAM's and SSE-SAM's training: CE, lr 0.01, momentum 0.9, weight decay 1e-3, batch 64, cosine to 0
    over 200 epochs."""
    return Config(
        data=DataConfig(dataset=dataset, profile="exp", ratio=100.0, seed=0),
        model=ModelConfig(name="resnet32", head="linear"),
        loss=LossConfig(name="ce"),
        optim=OptimConfig(lr=0.01, momentum=0.9, weight_decay=1e-3, batch_size=64, lr_schedule="cosine"),
        sam=SamConfig(kind="sam", rho=rho, freeze_bn=False),
        method=MethodConfig(name=method, args=args),
        train=TrainConfig(epochs=200, eval_every=10),
    )


def focal_sam(dataset: str, *, rho: float, flat_gamma: float, sharpness: float, weight_decay: float) -> Config:
    """Focal-SAM's CIFAR script: LA, lr 0.1, cosine to 0 without warm-up, batch 64, 200 epochs."""
    return Config(
        data=DataConfig(dataset=dataset, profile="exp", ratio=100.0, seed=0),
        model=ModelConfig(name="resnet32", head="linear"),
        loss=LossConfig(name="la"),
        optim=OptimConfig(lr=0.1, momentum=0.9, weight_decay=weight_decay, batch_size=64, lr_schedule="cosine"),
        sam=SamConfig(kind="sam", rho=rho, freeze_bn=False),
        method=MethodConfig(name="focal-sam", args={"sharpness": sharpness, "flat_gamma": flat_gamma}),
        train=TrainConfig(epochs=200, eval_every=10),
    )


def cc_sam(dataset: str, *, flat_ratio: float, up_limit: float) -> Config:
    """CC-SAM's CIFAR configs: 200 epochs of stage 1 and 30 of stage 2, batch 64, lr 0.1 (warm-up from a
    third over 5 epochs, x0.1 from epochs 160 and 180, 0.01 in stage 2), weight decay 2e-4, MixUp, r 1e-6,
    div 2, a 1."""
    return Config(
        data=DataConfig(dataset=dataset, profile="exp", ratio=100.0, seed=0),
        model=ModelConfig(name="resnet32", head="linear"),
        loss=LossConfig(name="ce"),
        optim=OptimConfig(lr=0.1, momentum=0.9, weight_decay=2e-4, batch_size=64, lr_schedule="cc_sam",
                          lr_args={"stage_two_after": 200}),
        method=MethodConfig(name="cc-sam", args={"flat_ratio": flat_ratio, "up_limit": up_limit,
                                                 "noise_ratio": 1e-6, "div": 2.0, "adversarial": 1.0}),
        train=TrainConfig(epochs=230, eval_every=10),
    )


def sam_after_drw(dataset: str) -> Config:
    """LDAM+DRW+SAM with rho 0 until DRW switches on after epoch 160: SGD's cost for 160 epochs."""
    config = cifar_recipes.cifar(dataset, "ldam", weighting="drw", sam=True)
    config.sam.rho_schedule = "after"   # from loss.drw_start
    return config


def after_drw_smoke(config: Config) -> list[str]:
    """The CIFAR :smoke overrides with SAM switched on with DRW (after epoch 3 of 6), not ramped."""
    return [*cifar_recipes.SMOKE, *cifar_recipes.SMOKE_DATA[config.data.dataset]]


# --- ImbSAM -------------------------------------------------------------------------------------------


@ltsam_recipe(reference=RESNET34_FIRST_N)
def cifar10_imbsam() -> Config:
    """CIFAR-10-LT ratio 100, ImbSAM (SAM on the tail's loss, x2), ResNet-32, rho 0.05. The tail is the
    classes under 200 images (3 of 10), tailsam's choice: the reference has no CIFAR-10 setting.

        tailsam train cifar10-imbsam --out runs/cifar10-imbsam

    Runtime: 200 epochs, 1.6 h of training on a 2-core AMD EPYC in bf16 (2 forwards, 3 backwards a step;
    benchmarks/method_steps.py); the :smoke variant, seconds.
    """
    return cosine_ce("cifar10", method="imbsam", rho=0.05, args={"eta": 200, "tail_weight": 2.0})


@ltsam_recipe(reference=RESNET34_FIRST_N)
def cifar100_imbsam() -> Config:
    """CIFAR-100-LT ratio 100, ImbSAM, ResNet-32, rho 0.05, tail under 20 images (30 classes). Published:
    51.1% (many/medium/few 75.9/53.5/19.4) on the :reference setting, test-selected with flip TTA.

        tailsam train cifar100-imbsam --out runs/cifar100-imbsam

    Runtime: 200 epochs, 1.6 h of training on a 2-core AMD EPYC in bf16; the :smoke variant, seconds.
    """
    return cosine_ce("cifar100", method="imbsam", rho=0.05, args={"eta": 20, "tail_weight": 2.0})


# --- SSE-SAM ------------------------------------------------------------------------------------------


@ltsam_recipe(reference=RESNET34_FIRST_N)
def cifar10_sse_sam() -> Config:
    """CIFAR-10-LT ratio 100, SSE-SAM (head rho 0.05 through epoch 140, tail rho 0.1), ResNet-32. The tail is
    the classes under 1000 images (6 of 10), tailsam's choice by analogy with CIFAR-100's eta 100 (the
    many-shot threshold): the reference publishes no CIFAR-10 setting.

        tailsam train cifar10-sse-sam --out runs/cifar10-sse-sam

    Runtime: 200 epochs, at most 2.8 h of training on a 2-core AMD EPYC in bf16 (3 forwards, 4 backwards a
    step while the head radius is on, one of each fewer after); the :smoke variant, seconds.
    """
    return cosine_ce("cifar10", method="sse-sam", rho=0.1, args={"eta": 1000, "head_rho": 0.05, "stage": 0.7})


@ltsam_recipe(reference=RESNET34_FIRST_N)
def cifar100_sse_sam() -> Config:
    """CIFAR-100-LT ratio 100, SSE-SAM, ResNet-32: eta 100 (65 tail classes), head rho 0.05 through epoch
    140 of 200, tail rho 0.1. Published: 49.3% (71.7/54.5/17.1) on the :reference setting, test-selected with
    flip TTA.

        tailsam train cifar100-sse-sam --out runs/cifar100-sse-sam

    Runtime: 200 epochs, at most 2.3 h of training on a 2-core AMD EPYC in bf16; the :smoke variant, seconds.
    """
    return cosine_ce("cifar100", method="sse-sam", rho=0.1, args={"eta": 100, "head_rho": 0.05, "stage": 0.7})


# --- Focal-SAM ----------------------------------------------------------------------------------------


@ltsam_recipe(reference=())
def cifar10_focal_sam() -> Config:
    """CIFAR-10-LT ratio 100, Focal-SAM with LA: rho 0.2, gamma 3.0, lambda 0.5, weight decay 2e-4. The
    reference trains this very setting (ResNet-32, the LDAM subset): :reference is the recipe. No published
    figure retrieved (METHODS.md 7.4).

        tailsam train cifar10-focal-sam --out runs/cifar10-focal-sam

    Runtime: 200 epochs, 2.2 h of training on a 2-core AMD EPYC in bf16; the :smoke variant, seconds.
    """
    return focal_sam("cifar10", rho=0.2, flat_gamma=3.0, sharpness=0.5, weight_decay=2e-4)


@ltsam_recipe(reference=())
def cifar100_focal_sam() -> Config:
    """CIFAR-100-LT ratio 100, Focal-SAM with LA: rho 0.3, gamma 3.2, lambda 0.8, weight decay 1e-3
    (:reference is the recipe).

        tailsam train cifar100-focal-sam --out runs/cifar100-focal-sam

    Runtime: 200 epochs, 1.7 h of training on a 2-core AMD EPYC in bf16; the :smoke variant, seconds.
    """
    return focal_sam("cifar100", rho=0.3, flat_gamma=3.2, sharpness=0.8, weight_decay=1e-3)


# --- CC-SAM -------------------------------------------------------------------------------------------


@ltsam_recipe(reference=("model.name=resnet32_bbn", "data.seed=42"), extra_smoke=CC_SAM_SMOKE)
def cifar10_cc_sam() -> Config:
    """CIFAR-10-LT ratio 100, CC-SAM: kappa 0.3, stage 2's adversarial share up to 1.0. Stage 2 starts from
    the final stage-1 weights (the reference: its test-selected best). The reference's configs ship ratio
    200 (data.ratio=200); no published figure retrieved.

        tailsam train cifar10-cc-sam --out runs/cifar10-cc-sam

    Runtime: 230 epochs, 0.8 h of training on a 2-core AMD EPYC in bf16 (one pass a step); the :smoke variant,
    seconds.
    """
    return cc_sam("cifar10", flat_ratio=0.3, up_limit=1.0)


@ltsam_recipe(reference=("model.name=resnet32_bbn", "data.seed=42"), extra_smoke=CC_SAM_SMOKE)
def cifar100_cc_sam() -> Config:
    """CIFAR-100-LT ratio 100, CC-SAM: kappa 0.5, stage 2's adversarial share up to 0.3.

        tailsam train cifar100-cc-sam --out runs/cifar100-cc-sam

    Runtime: 230 epochs, 0.7 h of training on a 2-core AMD EPYC in bf16; the :smoke variant, seconds.
    """
    return cc_sam("cifar100", flat_ratio=0.5, up_limit=0.3)


# --- SAM after DRW ------------------------------------------------------------------------------------


@recipe(smoke_overrides=after_drw_smoke)
def cifar10_ldam_drw_sam_after_drw() -> Config:
    """CIFAR-10-LT ratio 100, LDAM+DRW with SAM (rho 0.8) only from epoch 161, when DRW's weights switch on.

        tailsam train cifar10-ldam-drw-sam-after-drw --out runs/cifar10-ldam-drw-sam-after-drw

    Runtime: 200 epochs, 0.8 h of training on a 2-core AMD EPYC in bf16 (SGD's cost for 160 epochs); the
    :smoke variant, seconds.
    """
    return sam_after_drw("cifar10")


@recipe(smoke_overrides=after_drw_smoke)
def cifar100_ldam_drw_sam_after_drw() -> Config:
    """CIFAR-100-LT ratio 100, LDAM+DRW with SAM (rho 0.8) only from epoch 161.

        tailsam train cifar100-ldam-drw-sam-after-drw --out runs/cifar100-ldam-drw-sam-after-drw

    Runtime: 200 epochs, 0.7 h of training on a 2-core AMD EPYC in bf16; the :smoke variant, seconds.
    """
    return sam_after_drw("cifar100")
