"""ImageNet-LT and iNaturalist 2018 recipes (Rangwani et al. 2022, the large-scale setting).

ResNet-50 from scratch, batch 256, SGD momentum 0.9, 90 epochs of cosine lr
(0.2 for ImageNet-LT, 0.1 for iNaturalist; per epoch, no warm-up), DRW from
the 61st epoch, LDAM's largest margin 0.3. Weight decay 2e-4, except 1e-4 for
LDAM on iNaturalist. SAM's rho follows the "rho steps" a, b, c, d for epochs
1-5, 6-60, 61-75 and 76-90: 0.05 0.1 0.5 0.5, except 0.05 0.1 0.1 0.2 for CE
on iNaturalist. As in the paper's code, SAM's perturbed pass updates
BatchNorm statistics. Images: RandomResizedCrop 224 + flip + ColorJitter 0.4
for training, Resize 256 + CenterCrop 224 for testing (data/jpeg.py).

The same protocol trains on your own data: `data.dataset=folder` (a class-
per-folder tree) or `data.dataset=lists` (your split files); see README.
"""

from __future__ import annotations

from typing import Callable

from tailsam.config import (
    Config, DataConfig, EvalConfig, LossConfig, ModelConfig, OptimConfig, SamConfig, TrainConfig,
)
from tailsam.losses import LOSSES
from tailsam.recipes.registry import recipe

EPOCHS, DRW_START = 90, 60
LR = {"imagenet-lt": 0.2, "inat2018": 0.1}
RHO_STEPS = {"imagenet-lt": {"ce": (0.05, 0.1, 0.5, 0.5), "ldam": (0.05, 0.1, 0.5, 0.5)},
             "inat2018": {"ce": (0.05, 0.1, 0.1, 0.2), "ldam": (0.05, 0.1, 0.5, 0.5)}}
WEIGHT_DECAY = {"imagenet-lt": {"ce": 2e-4, "ldam": 2e-4}, "inat2018": {"ce": 2e-4, "ldam": 1e-4}}
# The paper's top-1 (ResNet-50) is keyed by the imbalance ratio of the published training lists, as
# for CIFAR: 1280 / 5 = 256 for ImageNet-LT, 1000 / 2 = 500 for iNaturalist 2018.
# Runtimes are estimates (not measured: no GPU where this was written). 90 epochs of 115.8K / 437.5K
# images; ResNet-50 trains at very roughly 2000 images/s on one H100-class GPU, SAM at half that,
# if about 16 CPU cores decode the JPEGs (benchmarks/jpeg_loader.py gives the rate per core).
# The :smoke variants: tiny images and the first 10 classes, so they run in seconds on a CPU.
SMOKE = ("data.image_size=32", "data.resize=36", "data.classes=10")


def imagenet(dataset: str, loss: str, *, weighting: str = "none", sam: bool = False) -> Config:
    """The paper's large-scale setting on `dataset` for `loss` (ce, ldam) with `weighting`, SAM or not."""
    sam_config = SamConfig(kind="none")
    if sam:
        sam_config = SamConfig(kind="sam", rho_schedule="rho_steps",
                               rho_args={"values": list(RHO_STEPS[dataset][loss])}, freeze_bn=False)
    return Config(
        data=DataConfig(dataset=dataset),
        model=ModelConfig(name="resnet50", head=LOSSES.get(loss).info.head),
        loss=LossConfig(name=loss, weighting=weighting, drw_start=DRW_START,
                        hparams={"max_m": 0.3} if loss == "ldam" else {}),
        # Cosine over train.epochs (the lr schedule's `epochs` defaults to the run's length).
        optim=OptimConfig(lr=LR[dataset], momentum=0.9, weight_decay=WEIGHT_DECAY[dataset][loss],
                          batch_size=256, lr_schedule="cosine"),
        sam=sam_config,
        train=TrainConfig(epochs=EPOCHS, eval_every=10),
        eval=EvalConfig(batch_size=256),
    )


def imagenet_recipe(paper_top1: dict[float, float] | None = None) -> Callable:
    """@recipe with the :smoke overrides of the image-file datasets."""
    return recipe(paper_top1=paper_top1, smoke_overrides=SMOKE)


@imagenet_recipe()
def imagenet_lt_ce_drw() -> Config:
    """ImageNet-LT CE+DRW, ResNet-50 (no figure in the paper).

        tailsam train imagenet-lt-ce-drw --data-root DIR --out runs/imagenet-lt-ce-drw

    Runtime: 90 epochs, roughly 1.5 h on one H100-class GPU with 16 CPU cores decoding (an
    estimate, not measured); the :smoke variant takes seconds on a CPU.
    """
    return imagenet("imagenet-lt", "ce", weighting="drw")


@imagenet_recipe()
def imagenet_lt_ce_drw_sam() -> Config:
    """ImageNet-LT CE+DRW+SAM, ResNet-50 (no figure in the paper).

        tailsam train imagenet-lt-ce-drw-sam --data-root DIR --out runs/imagenet-lt-ce-drw-sam

    Runtime: 90 epochs, roughly 3 h on one H100-class GPU with 16 CPU cores decoding (an
    estimate, not measured); the :smoke variant takes seconds on a CPU.
    """
    return imagenet("imagenet-lt", "ce", weighting="drw", sam=True)


@imagenet_recipe()
def imagenet_lt_ldam_drw() -> Config:
    """ImageNet-LT LDAM+DRW, ResNet-50 (no figure in the paper).

        tailsam train imagenet-lt-ldam-drw --data-root DIR --out runs/imagenet-lt-ldam-drw

    Runtime: 90 epochs, roughly 1.5 h on one H100-class GPU with 16 CPU cores decoding (an
    estimate, not measured); the :smoke variant takes seconds on a CPU.
    """
    return imagenet("imagenet-lt", "ldam", weighting="drw")


@imagenet_recipe(paper_top1={256: 53.1})
def imagenet_lt_ldam_drw_sam() -> Config:
    """ImageNet-LT LDAM+DRW+SAM, ResNet-50 (the paper: 53.1%).

        tailsam train imagenet-lt-ldam-drw-sam --data-root DIR --out runs/imagenet-lt-ldam-drw-sam

    Runtime: 90 epochs, roughly 3 h on one H100-class GPU with 16 CPU cores decoding (an
    estimate, not measured); the :smoke variant takes seconds on a CPU.
    """
    return imagenet("imagenet-lt", "ldam", weighting="drw", sam=True)


@imagenet_recipe()
def inat2018_ce_drw() -> Config:
    """iNaturalist 2018 CE+DRW, ResNet-50 (no figure in the paper).

        tailsam train inat2018-ce-drw --data-root DIR --out runs/inat2018-ce-drw

    Runtime: 90 epochs, roughly 5.5 h on one H100-class GPU with 16 CPU cores decoding (an
    estimate, not measured); the :smoke variant takes seconds on a CPU.
    """
    return imagenet("inat2018", "ce", weighting="drw")


@imagenet_recipe()
def inat2018_ce_drw_sam() -> Config:
    """iNaturalist 2018 CE+DRW+SAM, ResNet-50 (no figure in the paper).

        tailsam train inat2018-ce-drw-sam --data-root DIR --out runs/inat2018-ce-drw-sam

    Runtime: 90 epochs, roughly 11 h on one H100-class GPU with 16 CPU cores decoding (an
    estimate, not measured); the :smoke variant takes seconds on a CPU.
    """
    return imagenet("inat2018", "ce", weighting="drw", sam=True)


@imagenet_recipe()
def inat2018_ldam_drw() -> Config:
    """iNaturalist 2018 LDAM+DRW, ResNet-50 (no figure in the paper).

        tailsam train inat2018-ldam-drw --data-root DIR --out runs/inat2018-ldam-drw

    Runtime: 90 epochs, roughly 5.5 h on one H100-class GPU with 16 CPU cores decoding (an
    estimate, not measured); the :smoke variant takes seconds on a CPU.
    """
    return imagenet("inat2018", "ldam", weighting="drw")


@imagenet_recipe(paper_top1={500: 70.1})
def inat2018_ldam_drw_sam() -> Config:
    """iNaturalist 2018 LDAM+DRW+SAM, ResNet-50 (the paper: 70.1%).

        tailsam train inat2018-ldam-drw-sam --data-root DIR --out runs/inat2018-ldam-drw-sam

    Runtime: 90 epochs, roughly 11 h on one H100-class GPU with 16 CPU cores decoding (an
    estimate, not measured); the :smoke variant takes seconds on a CPU.
    """
    return imagenet("inat2018", "ldam", weighting="drw", sam=True)
