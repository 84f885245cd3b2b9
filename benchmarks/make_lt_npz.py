"""Write a small CIFAR npz that keeps pixels only for one long-tailed split's training images.

Labels stay complete and every other training image becomes zeros, which
compress to almost nothing, so the readers and the selection protocol work on
it unchanged (for that ratio and data seed, and larger ratios, which select
subsets of it). Used to carry the data to a GPU machine with the code.

    python benchmarks/make_lt_npz.py SRC_DIR DEST_DIR [--dataset cifar10] [--ratio 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tailsam.data import load_dataset, select_longtail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("dest")
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100"])
    parser.add_argument("--ratio", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_dataset(args.dataset, args.src, download=False)
    split = select_longtail(data.y_train, data.num_classes, ratio=args.ratio, seed=args.seed)
    x_train = np.zeros_like(data.x_train)
    x_train[split.indices] = data.x_train[split.indices]
    dest = Path(args.dest) / f"{args.dataset}.npz"
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dest, x_train=x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test,
                        label_names=np.array(data.class_names))
    print(json.dumps({"file": str(dest), "mib": round(dest.stat().st_size / 2**20, 1),
                      "selected": int(len(split.indices)), "indices_sha256": split.indices_sha256()}))


if __name__ == "__main__":
    main()
