"""SAM training images/s: tailsam's step and loader against a loop in the paper code's style.

Same run, same machine, ResNet-32 with the cosine head, LDAM loss, batch 128,
CIFAR-10-LT ratio 100 (the real file). The reference is the paper code's
pipeline: torch DataLoader over PIL images with RandomCrop + flip + ToTensor +
Normalize, fp32 NCHW, and a SAM written as in davda54/sam (per-parameter
norms stacked, e = rho * g / (||g|| + 1e-12), subtract e afterwards). tailsam
runs `sam_step` on batches from its device loader at the precision a run
gets by default (train.precision=auto, resolved for ResNet-32 on this device)
and memory format, and any others asked for with --precisions.
Prints one JSON object.

    python benchmarks/train_step.py [--root DIR] [--steps 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torchvision.transforms as T

from common import PilDataset, cifar10_lt, machine, memory, sync
from tailsam.config import TrainConfig
from tailsam.data import DeviceLoader
from tailsam.losses import build_loss
from tailsam.models import build_model
from tailsam.optim import SAM
from tailsam.run.precision import cpu_description, resolve_auto, resolve_precision
from tailsam.methods import sam_step


class ReferenceSAM(torch.optim.Optimizer):
    """SAM as the paper's code has it (after davda54/sam): a base optimizer class built inside."""

    def __init__(self, params, base_optimizer, rho, **kwargs):
        super().__init__(params, dict(rho=rho, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups

    @torch.no_grad()
    def first_step(self):
        norm = torch.norm(torch.stack([p.grad.norm(p=2) for g in self.param_groups for p in g["params"]
                                       if p.grad is not None]), p=2)
        for group in self.param_groups:
            scale = group["rho"] / (norm + 1e-12)
            for p in group["params"]:
                if p.grad is not None:
                    self.state[p]["e_w"] = e = p.grad * scale
                    p.add_(e)
        self.zero_grad()

    @torch.no_grad()
    def second_step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(self.state[p]["e_w"])
        self.base_optimizer.step()
        self.zero_grad()


def batches_forever(loader):
    while True:
        yield from loader


def measure(step, batches, steps: int, warmup: int, device) -> float:
    """Images/s over `steps` updates after `warmup` untimed ones (data loading included)."""
    for _ in range(warmup):
        step(*next(batches))
    sync(device)
    start, seen = time.perf_counter(), 0
    for _ in range(steps):
        images, labels = next(batches)
        step(images, labels)
        seen += len(labels)
    sync(device)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="reference DataLoader worker counts to time (the paper's code uses 4)")
    parser.add_argument("--precisions", nargs="*", default=[], help="extra tailsam precisions to time, e.g. bf16")
    args = parser.parse_args()
    device = torch.device(args.device)
    images, labels, info = cifar10_lt(args.root)
    counts = torch.bincount(torch.as_tensor(labels)).tolist()
    criterion = build_loss("ldam", counts).to(device)
    results = {}

    # Reference: the paper's loop, with each DataLoader worker count asked for.
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(info.mean, info.std)])
    for workers in args.workers:
        torch.manual_seed(0)
        model = build_model("resnet32", 10, head="normed").to(device)
        optimizer = ReferenceSAM(model.parameters(), torch.optim.SGD, rho=0.8, lr=0.1, momentum=0.9,
                                 weight_decay=2e-4)
        loader = torch.utils.data.DataLoader(PilDataset(images, labels, transform), batch_size=128, shuffle=True,
                                             num_workers=workers, pin_memory=device.type == "cuda",
                                             persistent_workers=workers > 0)

        def reference_step(x, y, model=model, optimizer=optimizer):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            criterion(model(x), y).backward()
            optimizer.first_step()
            criterion(model(x), y).backward()
            optimizer.second_step()

        results[f"reference_workers_{workers}"] = measure(reference_step, batches_forever(loader), args.steps,
                                                          args.warmup, device)
        del loader

    # tailsam: device loader + sam_step, at the default precision and any asked for.
    default = resolve_auto(TrainConfig().precision, device, "resnet32")
    for name in [default] + [p for p in args.precisions if p != default]:
        precision = resolve_precision(name, device)
        torch.manual_seed(0)
        model = build_model("resnet32", 10, head="normed").to(device, memory_format=torch.channels_last)
        sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4), rho=0.8)
        device_loader = DeviceLoader(images, labels, batch_size=128, mean=info.mean, std=info.std,
                                     augment=info.augment, device=device, channels_last=True, seed=0)

        def tailsam_step(x, y, model=model, sam=sam, precision=precision):
            sam_step(model, criterion, sam, x, y, autocast=precision.autocast, freeze_bn=False,
                     scaler=precision.grad_scaler())

        results[f"tailsam_{name}"] = measure(tailsam_step, batches_forever(device_loader), args.steps,
                                             args.warmup, device)

    best = max(v for k, v in results.items() if k.startswith("tailsam"))
    reference = max(v for k, v in results.items() if k.startswith("reference"))
    print(json.dumps({
        "benchmark": "train_step", "device": str(device), "machine": machine(device), "cpu": cpu_description(),
        "default_precision": default,
        "model": "resnet32 (normed head), LDAM, SAM rho 0.8", "batch": 128, "steps": args.steps,
        "images_per_s": {k: round(v, 1) for k, v in results.items()},
        "speedup_default_vs_best_reference": round(results[f"tailsam_{default}"] / reference, 2),
        "speedup_best_vs_best_reference": round(best / reference, 2),
        **memory(device),
    }, indent=1))


if __name__ == "__main__":
    main()
