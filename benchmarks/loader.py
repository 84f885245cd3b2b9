"""Images/s of tailsam's device loader against torchvision's DataLoader over PIL images.

Both feed CIFAR-10-LT ratio 100 (seed 0, the real file), batch 128, with random
crop 32 / padding 4, horizontal flip and normalisation, in the same run. The
reference is the paper code's pipeline: a Dataset that makes a PIL image per
item and applies RandomCrop + RandomHorizontalFlip + ToTensor + Normalize.
Batches are moved to the device in both cases. Prints one JSON object.

    python benchmarks/loader.py [--root DIR] [--device cpu|cuda] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json

import torch
import torchvision.transforms as T
from common import PilDataset, cifar10_lt, machine, memory, timed
from tailsam.data import DeviceLoader


def drain(batches, device, epochs):
    """Consume `epochs` passes over `batches`, moving each batch to the device."""
    def run():
        for _ in range(epochs):
            for x, y in batches:
                x.to(device, non_blocking=True)
                y.to(device, non_blocking=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    device = torch.device(args.device)

    images, labels, info = cifar10_lt(args.root)
    n = len(images)

    loader = DeviceLoader(images, labels, batch_size=args.batch, mean=info.mean, std=info.std,
                          augment=info.augment, device=device, seed=0)
    next(iter(loader))  # warm up kernels and allocator
    device_s = timed(drain(loader, device, args.epochs), device)

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(info.mean, info.std)])
    reference = {}
    for workers in args.workers:
        dl = torch.utils.data.DataLoader(PilDataset(images, labels, transform), batch_size=args.batch, shuffle=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
        next(iter(dl))
        seconds = timed(drain(dl, device, args.epochs), device)
        reference[f"workers_{workers}"] = {"seconds": round(seconds, 3), "images_per_s": round(args.epochs * n / seconds)}

    best_reference = max(r["images_per_s"] for r in reference.values())
    device_ips = args.epochs * n / device_s
    print(json.dumps({
        "benchmark": "loader", "device": str(device), "machine": machine(device),
        "dataset": "cifar10-lt r100 seed 0", "images": n, "batch": args.batch, "epochs": args.epochs,
        "tailsam_device_loader": {"seconds": round(device_s, 3), "images_per_s": round(device_ips)},
        "torchvision_dataloader": reference,
        "speedup_vs_best_reference": round(device_ips / best_reference, 2),
        **memory(device),
    }, indent=1))


if __name__ == "__main__":
    main()
