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

from tailsam.config import (
    Config, DataConfig, EvalConfig, LossConfig, ModelConfig, OptimConfig, SamConfig, TrainConfig,
)
from tailsam.recipes.methods import METHODS, Method
from tailsam.recipes.registry import RECIPES

EPOCHS, DRW_START = 90, 60
LR = {"imagenet-lt": 0.2, "inat2018": 0.1}
RHO_STEPS = {"imagenet-lt": {"ce": (0.05, 0.1, 0.5, 0.5), "ldam": (0.05, 0.1, 0.5, 0.5)},
             "inat2018": {"ce": (0.05, 0.1, 0.1, 0.2), "ldam": (0.05, 0.1, 0.5, 0.5)}}
WEIGHT_DECAY = {"imagenet-lt": {"ce": 2e-4, "ldam": 2e-4}, "inat2018": {"ce": 2e-4, "ldam": 1e-4}}
TITLE = {"imagenet-lt": "ImageNet-LT", "inat2018": "iNaturalist 2018"}
# Imbalance ratio of the published training lists (largest / smallest class): 1280 / 5 and 1000 / 2.
RATIO = {"imagenet-lt": 256, "inat2018": 500}
# Top-1 % of the paper (ResNet-50), keyed by that ratio as for CIFAR; only the figures it states.
PAPER_TOP1 = {("imagenet-lt", "ldam-drw-sam"): 53.1, ("inat2018", "ldam-drw-sam"): 70.1}
# Runtime, an estimate (not measured: no GPU where this was written). 90 epochs of 115.8K / 437.5K
# images; ResNet-50 trains at very roughly 2000 images/s on one H100-class GPU, SAM at half that,
# if about 16 CPU cores decode the JPEGs (benchmarks/jpeg_loader.py gives the rate per core).
RUNTIME = {"imagenet-lt": ("1.5 h", "3 h"), "inat2018": ("5.5 h", "11 h")}
# The :smoke variants: tiny images and the first 10 classes, so they run in seconds on a CPU.
SMOKE = ("data.image_size=32", "data.resize=36", "data.classes=10")
METHOD_NAMES = ("ce-drw", "ce-drw-sam", "ldam-drw", "ldam-drw-sam")


def imagenet_config(dataset: str, method: Method) -> Config:
    sam = SamConfig(kind="none")
    if method.sam:
        sam = SamConfig(kind="sam", rho_schedule="rho_steps",
                        rho_args={"values": list(RHO_STEPS[dataset][method.loss])}, freeze_bn=False)
    return Config(
        data=DataConfig(dataset=dataset),
        model=ModelConfig(name="resnet50", head=method.head),
        loss=LossConfig(name=method.loss, weighting=method.weighting, drw_start=DRW_START,
                        hparams={"max_m": 0.3} if method.loss == "ldam" else {}),
        # Cosine over train.epochs (the lr schedule's `epochs` defaults to the run's length).
        optim=OptimConfig(lr=LR[dataset], momentum=0.9, weight_decay=WEIGHT_DECAY[dataset][method.loss],
                          batch_size=256, lr_schedule="cosine"),
        sam=sam,
        train=TrainConfig(epochs=EPOCHS, eval_every=10),
        eval=EvalConfig(batch_size=256),
    )


def _register(dataset: str, name: str, method: Method) -> None:
    top1 = PAPER_TOP1.get((dataset, name))
    paper = {RATIO[dataset]: top1} if top1 is not None else {}

    def recipe() -> Config:
        return imagenet_config(dataset, method)

    runtime = RUNTIME[dataset][1 if method.sam else 0]
    recipe.__doc__ = (
        f"{TITLE[dataset]} {name.upper().replace('-', '+')}, ResNet-50.\n\n"
        f"    tailsam train {dataset}-{name} --data-root DIR --out runs/{dataset}-{name}\n\n"
        f"Paper top-1: {f'{top1}%' if top1 is not None else 'not reported in the paper'}. Runtime: 90 epochs, "
        f"roughly {runtime} on one H100-class GPU with 16 CPU cores decoding (an estimate, not measured); "
        f"the :smoke variant takes seconds on a CPU."
    )
    RECIPES.register(f"{dataset}-{name}", paper_top1=paper, smoke=SMOKE)(recipe)


for _dataset in LR:
    for _name in METHOD_NAMES:
        _register(_dataset, _name, METHODS[_name])
