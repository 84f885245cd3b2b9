"""Images/s of the ImageNet-LT / iNaturalist training pipeline (tailsam's FileLoader) by number of workers.

Generates `--images` JPEGs of 500x375 (ImageNet's typical size; smooth random
colour fields with some noise, quality 90) in a temporary folder, then for
each worker count times one epoch of RandomResizedCrop 224 + flip +
ColorJitter 0.4, batch `--batch`, normalised on `--device`, after a warm-up
epoch that starts the persistent workers. Also times the test pipeline
(Resize 256 + CenterCrop 224) with the most workers, and the check that opens
every file's header before training. Prints one JSON object with peak host
RSS of this process and of the largest worker.

    python benchmarks/jpeg_loader.py [--images 512] [--workers 0 1 2] [--batch 64] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import machine, memory, timed
from PIL import Image

from tailsam.data import FileLoader, ImageFiles
from tailsam.data.imagefiles import find_unreadable
from tailsam.data.jpeg import IMAGENET_MEAN, IMAGENET_STD, test_transform, train_transform

WIDTH, HEIGHT = 500, 375


def write_jpegs(folder: Path, n: int, seed: int = 0) -> ImageFiles:
    """n photo-like JPEGs (a bicubic-upsampled 8x6 colour grid plus noise) in 10 classes."""
    rng = np.random.RandomState(seed)
    paths = []
    for i in range(n):
        coarse = Image.fromarray(rng.randint(0, 256, (6, 8, 3), dtype=np.uint8)).resize((WIDTH, HEIGHT), Image.BICUBIC)
        pixels = np.asarray(coarse, dtype=np.int16) + rng.randint(-12, 13, (HEIGHT, WIDTH, 3))
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path.name)
    return ImageFiles.from_paths(folder, paths, np.arange(n) % 10, str(folder))


def epoch_rate(loader: FileLoader, device: torch.device) -> dict:
    """Seconds and images/s of one epoch, after a first epoch that starts the workers and warms the caches."""
    start = time.perf_counter()
    next(iter(loader))
    first_batch = time.perf_counter() - start
    for _ in loader:   # rest of the warm-up epoch
        pass
    seconds = timed(lambda: [None for _ in loader], device)
    return {"seconds": round(seconds, 3), "images_per_s": round(loader.num_images / seconds, 1),
            "first_batch_s": round(first_batch, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        files = write_jpegs(Path(tmp), args.images)
        mean_kib = np.mean([files.path(i).stat().st_size for i in range(len(files))]) / 1024
        start = time.perf_counter()
        assert not find_unreadable(files)
        header_check_s = time.perf_counter() - start

        common = dict(image_size=224, batch_size=args.batch, mean=IMAGENET_MEAN, std=IMAGENET_STD, device=device,
                      channels_last=True)
        train = {}
        for workers in args.workers:
            loader = FileLoader(files, transform=train_transform(224), workers=workers, **common)
            train[f"workers_{workers}"] = epoch_rate(loader, device)
            del loader   # shuts its workers down
        loader = FileLoader(files, transform=test_transform(224, 256), sampler="sequential",
                            workers=max(args.workers), **common)
        test = {f"workers_{max(args.workers)}": epoch_rate(loader, device)}
        del loader

    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({
        "benchmark": "jpeg_loader", "device": str(device), "machine": machine(device),
        "cpu_cores": os.cpu_count(), "load_average_1min_after": round(os.getloadavg()[0], 2),
        "images": args.images, "image_size": [WIDTH, HEIGHT], "mean_file_kib": round(mean_kib, 1),
        "batch": args.batch,
        "train_pipeline": train, "test_pipeline": test,
        "header_check": {"seconds": round(header_check_s, 3), "files_per_s": round(args.images / header_check_s)},
        **memory(device), "peak_worker_rss_mib": round(children, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
