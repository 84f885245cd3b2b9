"""Per-class Hessian spectra: tailsam's single Lanczos run against the PyHessian-style reference protocol.

Same run, same model, same images. ResNet-32 (linear head, CE) trained briefly on
CIFAR-10-LT ratio 100 (the real file) or a run directory given with --run;
classes 0, 4, 9 (head, middle, tail), at most 128 training images each, loss CE.
- tailsam: `tailsam.hessian.analyze` on the plain images. One Lanczos run of
  --steps steps per class gives lambda_max, lambda_min, the trace and the density.
- reference: the protocol the paper's PyHessian runs followed, written here:
  power iteration (at most 100 products, relative tolerance 1e-3) for lambda_max,
  Hutchinson (at most 100, tolerance 1e-3 on the running mean) for the trace,
  then --steps Lanczos steps with full reorthogonalisation for the density.
  Every product is a double backward (forward, gradient with create_graph,
  backward of <gradient, v>) over the class's images drawn through a torch
  DataLoader in batches of 128 with the training augmentation applied per PIL
  image (RandomCrop 32 pad 4, flip), so the operator changes between products.
Prints one JSON object: wall time and Hessian-vector products of both, the time
of one product over the same images, the speedup, lambda_max and density-mean
agreement, peak RSS of each phase and of the whole process.

The reference's operator is not tailsam's: it averages over random crops and
flips, and a briefly trained ResNet's lambda_max moves by several percent from
one augmentation draw to the next (and more between plain and augmented
images). So lambda_max is also compared on the same operator: the reference's
power iteration and products on the plain images tailsam analyses (a control,
timed apart and not counted in the reference's time).

    python benchmarks/hessian.py [--root DIR] [--train-steps 200] [--classes 0 4 9] [--max-images 128]
                                 [--steps 100] [--run RUN_DIR] [--threads N]
    python benchmarks/hessian.py --train-steps 20 --steps 10 --max-images 32 --classes 0 9   # a quick check
    python benchmarks/hessian.py --scale [--scale-steps 8]    # ResNet-50: memory of the CPU-held basis
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torch import nn

from common import PilDataset, cifar10_lt, machine, memory
from tailsam.data import DeviceLoader
from tailsam.data.augment import normalize
from tailsam.hessian import analyze, class_hessian, class_indices, lanczos
from tailsam.hessian.hvp import LossHessian
from tailsam.models import build_model
from tailsam.run.precision import resolve_precision
from tailsam.methods import sgd_step

REFERENCE_MAX_ITER = 100
REFERENCE_TOL = 1e-3
REFERENCE_BATCH = 128
TIMING_REPEATS = 3


# --- memory ------------------------------------------------------------------------------------------

# The process's peak RSS before the last reset: the kernel's counter (and getrusage) only covers what came after.
_peak_before_reset_mib = 0.0


def reset_peak_rss() -> None:
    """Hand freed memory back to the OS, then restart the kernel's peak-RSS counter (VmHWM) at the current RSS."""
    global _peak_before_reset_mib
    _peak_before_reset_mib = max(_peak_before_reset_mib, rss_mib("VmHWM"))
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # the peak then covers the whole process so far


def process_memory() -> dict:
    """The benchmarks' peak-memory fields for this whole process, the phases before any reset included."""
    peaks = memory(torch.device("cpu"))
    peaks["peak_rss_mib"] = max(peaks["peak_rss_mib"], _peak_before_reset_mib)
    return peaks


def rss_mib(field: str) -> float:
    """VmRSS (current) or VmHWM (peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"{field} not in /proc/self/status")


def measured(phase):
    """Run phase(); return its result, wall seconds, the RSS before and the peak RSS during it (MiB)."""
    reset_peak_rss()
    before = rss_mib("VmRSS")
    start = time.perf_counter()
    result = phase()
    return result, time.perf_counter() - start, before, rss_mib("VmHWM")


# --- the model -----------------------------------------------------------------------------------------

def train_briefly(images: np.ndarray, labels: np.ndarray, info, steps: int) -> nn.Module:
    """ResNet-32 (linear head) trained `steps` SGD steps of batch 128 with CE, as tailsam trains it."""
    torch.manual_seed(0)
    model = build_model("resnet32", 10).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    loader = DeviceLoader(images, labels, batch_size=128, mean=info.mean, std=info.std, augment=info.augment,
                          channels_last=True, seed=0)
    precision = resolve_precision("fp32", torch.device("cpu"))
    model.train()
    done = 0
    while done < steps:
        for x, y in loader:
            sgd_step(model, F.cross_entropy, optimizer, x, y, autocast=precision.autocast)
            done += 1
            if done == steps:
                break
    return model.eval()


def run_model(run: str):
    """The model and training split of a run directory (its checkpoint), for --run."""
    from tailsam.config import config_from_dict
    from tailsam.data import dataset_info
    from tailsam.data import build_data
    from tailsam.run.build import build_network
    from tailsam.run.restore import checkpoint_path, load_model_state
    from tailsam.run.spectra import stored_images
    from tailsam.run.directory import load_checkpoint

    path = checkpoint_path(run)
    state = load_checkpoint(path)
    config = config_from_dict(state["config"])
    data = build_data(config, torch.device("cpu"))
    model = build_network(config, len(data.counts), data.in_channels, torch.device("cpu"))
    load_model_state(model, state["model"], path)
    images = stored_images(data.train).numpy()
    return model.eval(), images, data.train.labels.numpy(), dataset_info(config.data.dataset), config.recipe


# --- the reference protocol ----------------------------------------------------------------------------

def dot(xs: list[torch.Tensor], ys: list[torch.Tensor]) -> float:
    return float(sum((x * y).sum() for x, y in zip(xs, ys)))


def normalized(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    norm = math.sqrt(dot(xs, xs))
    return [x / (norm + 1e-6) for x in xs]


def rademacher(params: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    return [torch.randint(0, 2, p.shape, generator=generator).float() * 2 - 1 for p in params]


class ReferenceHessian:
    """Products H v as PyHessian computes them over a data loader: a double backward per batch, every time."""

    def __init__(self, model: nn.Module, loader: torch.utils.data.DataLoader):
        self.model = model.eval()
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.loader = loader
        self.products = 0

    def __call__(self, v: list[torch.Tensor]) -> list[torch.Tensor]:
        self.products += 1
        total = [torch.zeros_like(p) for p in self.params]
        seen = 0
        for x, y in self.loader:
            loss = F.cross_entropy(self.model(x), y)
            gradients = torch.autograd.grad(loss, self.params, create_graph=True)
            products = torch.autograd.grad(gradients, self.params, grad_outputs=v)
            for t, hv in zip(total, products):
                t.add_(hv, alpha=len(y))
            seen += len(y)
        return [t / seen for t in total]


def power_iteration(hessian: ReferenceHessian, generator: torch.Generator) -> tuple[float, int]:
    """Top eigenvalue: stop once two successive Rayleigh quotients agree to REFERENCE_TOL (relative)."""
    v = normalized([torch.randn(p.shape, generator=generator) for p in hessian.params])
    eigenvalue, steps = None, 0
    for steps in range(1, REFERENCE_MAX_ITER + 1):
        hv = hessian(v)
        estimate = dot(hv, v)
        v = normalized(hv)
        converged = eigenvalue is not None and abs(eigenvalue - estimate) / (abs(eigenvalue) + 1e-6) < REFERENCE_TOL
        eigenvalue = estimate
        if converged:
            break
    return eigenvalue, steps


def hutchinson(hessian: ReferenceHessian, generator: torch.Generator) -> tuple[list[float], int]:
    """Rademacher samples z^T H z until their running mean moves by less than REFERENCE_TOL (relative)."""
    samples, trace = [], 0.0
    for _ in range(REFERENCE_MAX_ITER):
        z = rademacher(hessian.params, generator)
        samples.append(dot(hessian(z), z))
        mean = float(np.mean(samples))
        if abs(mean - trace) / (abs(trace) + 1e-6) < REFERENCE_TOL:
            break
        trace = mean
    return samples, len(samples)


def reference_lanczos(hessian: ReferenceHessian, steps: int, generator: torch.Generator):
    """`steps` Lanczos steps, each new vector Gram-Schmidt-orthogonalised against all before; (nodes, weights)."""
    v = normalized(rademacher(hessian.params, generator))
    basis, alphas, betas = [v], [], []
    w = None
    for i in range(steps):
        if i > 0:
            beta = math.sqrt(dot(w, w))
            betas.append(beta)
            for u in basis:
                w = [wi - dot(w, u) * ui for wi, ui in zip(w, u)]
            v = normalized(w)
            basis.append(v)
        hv = hessian(v)
        alpha = dot(hv, v)
        alphas.append(alpha)
        w = [h - alpha * vi for h, vi in zip(hv, v)]
        if i > 0:
            w = [wi - betas[-1] * pi for wi, pi in zip(w, basis[-2])]
    tridiagonal = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        tridiagonal += torch.diag(off, 1) + torch.diag(off, -1)
    nodes, vectors = torch.linalg.eigh(tridiagonal)
    return nodes, vectors[0] ** 2


def reference_loader(images: np.ndarray, labels: np.ndarray, info, augment: bool) -> torch.utils.data.DataLoader:
    """The paper code's data path: PIL images, per-image transforms, shuffled batches of 128."""
    crop_flip = [T.RandomCrop(images.shape[1], padding=info.augment.padding)] + (
        [T.RandomHorizontalFlip()] if info.augment.flip else [])
    transform = T.Compose((crop_flip if augment else []) + [T.ToTensor(), T.Normalize(info.mean, info.std)])
    return torch.utils.data.DataLoader(PilDataset(images, labels, transform), batch_size=REFERENCE_BATCH,
                                       shuffle=augment, num_workers=0)


def reference_protocol(model: nn.Module, images: np.ndarray, labels: np.ndarray, info, steps: int, seed: int):
    """Power iteration, Hutchinson, then Lanczos, over freshly augmented batches of the class's images."""
    torch.manual_seed(seed)   # the DataLoader's shuffling and the per-image augmentation
    hessian = ReferenceHessian(model, reference_loader(images, labels, info, augment=True))
    generator = torch.Generator().manual_seed(seed)
    lambda_max, power_steps = power_iteration(hessian, generator)
    samples, hutchinson_steps = hutchinson(hessian, generator)
    nodes, weights = reference_lanczos(hessian, steps, generator)
    dim = sum(p.numel() for p in hessian.params)
    return {
        "hvps": {"power": power_steps, "hutchinson": hutchinson_steps, "lanczos": steps,
                 "total": power_steps + hutchinson_steps + steps},
        "lambda_max": lambda_max, "lambda_min": float(nodes[0]),
        "trace": float(np.mean(samples)),
        "trace_standard_error": float(np.std(samples, ddof=1) / math.sqrt(len(samples))) if len(samples) > 1
        else None,
        # One Rademacher sample z^T H z has this spread; one Lanczos run's mean is such a sample / dim.
        "probe_sd": float(np.std(samples, ddof=1)) if len(samples) > 1 else None,
        "density_mean": float((nodes * weights).sum()), "dim": dim,
    }


def plain_power_iteration(model: nn.Module, images: np.ndarray, labels: np.ndarray, info, seed: int) -> dict:
    """The control: the reference's power iteration and products on the plain images tailsam analyses."""
    hessian = ReferenceHessian(model, reference_loader(images, labels, info, augment=False))
    start = time.perf_counter()
    lambda_max, steps = power_iteration(hessian, torch.Generator().manual_seed(seed))
    return {"lambda_max": lambda_max, "hvps": steps, "seconds": round(time.perf_counter() - start, 1)}


# --- one product, timed --------------------------------------------------------------------------------

def median_seconds(fn, repeats: int = TIMING_REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def one_full_product_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """One double backward from scratch (forward, gradient with its graph, second backward) over x."""
    params = [p for p in model.parameters() if p.requires_grad]
    v = [torch.randn_like(p) for p in params]

    def product():
        gradients = torch.autograd.grad(F.cross_entropy(model(x), y), params, create_graph=True)
        torch.autograd.grad(gradients, params, grad_outputs=v)

    return median_seconds(product)


def tailsam_product_seconds(operator: LossHessian) -> float:
    """One of tailsam's products once the operator is set up (the first call builds any kept graph)."""
    v = torch.randn(operator.dim)
    operator(v)
    return median_seconds(lambda: operator(v))


# --- the benchmark --------------------------------------------------------------------------------------

def compare(args) -> dict:
    if args.run:
        model, images, labels, info, source = run_model(args.run)
        train_info = {"run": args.run, "recipe": source}
    else:
        images, labels, info = cifar10_lt(args.root)
        start = time.perf_counter()
        model = train_briefly(images, labels, info, args.train_steps)
        train_info = {"steps": args.train_steps, "batch": 128, "seconds": round(time.perf_counter() - start, 1)}
    counts = np.bincount(labels, minlength=int(labels.max()) + 1).tolist()
    uint8 = torch.from_numpy(images)
    targets = torch.from_numpy(labels)
    channels_last = next(p for p in model.parameters() if p.ndim == 4).is_contiguous(memory_format=torch.channels_last)
    mean, std = torch.tensor(info.mean), torch.tensor(info.std)

    def to_inputs(batch: torch.Tensor) -> torch.Tensor:
        return normalize(batch, mean, std, channels_last=channels_last)

    # The reference runs the model as PyHessian users do: default (NCHW) memory format, same weights.
    reference_model = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()

    spectra, tailsam_seconds, tailsam_before, tailsam_peak = measured(lambda: analyze(
        model, uint8, targets, counts, classes=args.classes, steps=args.steps, max_images=args.max_images,
        seed=args.seed, transform=to_inputs))
    per_class, references = [], []
    reference_before = reference_peak = None
    reference_seconds = 0.0
    for spectrum in spectra:
        c = spectrum.class_id
        positions = class_indices(targets, c, max_images=args.max_images, seed=args.seed).numpy()
        result, seconds, before, peak = measured(lambda: reference_protocol(
            reference_model, images[positions], labels[positions], info, args.steps, args.seed))
        reference_seconds += seconds
        reference_before = before if reference_before is None else min(reference_before, before)
        reference_peak = peak if reference_peak is None else max(reference_peak, peak)
        references.append(result)

        control = plain_power_iteration(reference_model, images[positions], labels[positions], info, args.seed)
        x = to_inputs(uint8[positions]).contiguous()
        operator = class_hessian(model, F.cross_entropy, uint8, targets, c, max_images=args.max_images,
                                 seed=args.seed, transform=to_inputs)
        tailsam_hvps = sum(run.steps for run in spectrum.density.runs)
        # A Lanczos run's mean is one Rademacher probe / dim for each of the two: their difference's spread.
        spread = math.sqrt(2) * result["probe_sd"] / result["dim"] if result["probe_sd"] else None
        per_class.append({
            "class": c, "train_count": counts[c], "images": spectrum.n_images,
            "one_full_hvp_s": round(one_full_product_seconds(reference_model, x, targets[positions]), 3),
            "tailsam_product_s": round(tailsam_product_seconds(operator), 3),
            "tailsam": {"hvps": tailsam_hvps, "lambda_max": spectrum.lambda_max, "lambda_min": spectrum.lambda_min,
                        "trace": spectrum.trace, "density_mean": spectrum.density.mean()},
            "reference": {"seconds": round(seconds, 1), **result},
            "lambda_max_relative_difference": round(abs(spectrum.lambda_max - result["lambda_max"])
                                                    / abs(result["lambda_max"]), 4),
            "control_plain_images_power_iteration": control,
            "lambda_max_relative_difference_same_images": round(abs(spectrum.lambda_max - control["lambda_max"])
                                                                / abs(control["lambda_max"]), 4),
            "density_mean_difference_in_standard_errors": round(
                abs(spectrum.density.mean() - result["density_mean"]) / spread, 2) if spread else None,
        })
        del operator

    tailsam_hvps = sum(row["tailsam"]["hvps"] for row in per_class)
    reference_hvps = sum(row["reference"]["hvps"]["total"] for row in per_class)
    own_products = sum(row["tailsam"]["hvps"] * row["tailsam_product_s"] for row in per_class)
    full_products = sum(row["tailsam"]["hvps"] * row["one_full_hvp_s"] for row in per_class)
    speedup = reference_seconds / tailsam_seconds
    overhead = tailsam_seconds / own_products
    lambda_max_agree = all(row["lambda_max_relative_difference"] <= 0.02 for row in per_class)
    same_images_agree = all(row["lambda_max_relative_difference_same_images"] <= 0.02 for row in per_class)
    means_agree = all(row["density_mean_difference_in_standard_errors"] is not None
                      and row["density_mean_difference_in_standard_errors"] <= 3 for row in per_class)
    return {
        "benchmark": "hessian", "machine": machine(torch.device("cpu")),
        "model": "resnet32 (linear head), loss CE, eval mode", "train": train_info,
        "classes": args.classes, "max_images": args.max_images, "steps": args.steps, "seed": args.seed,
        "tailsam": {"seconds": round(tailsam_seconds, 1), "hvps": tailsam_hvps,
                    "rss_before_mib": tailsam_before, "peak_rss_mib": tailsam_peak,
                    "seconds_over_hvps_x_own_product": round(overhead, 3),
                    "seconds_over_hvps_x_one_full_hvp": round(tailsam_seconds / full_products, 3)},
        "reference": {"seconds": round(reference_seconds, 1), "hvps": reference_hvps,
                      "rss_before_mib": reference_before, "peak_rss_mib": reference_peak},
        "speedup": round(speedup, 2),
        "per_class": per_class,
        "targets": {"speedup_at_least_3": speedup >= 3, "overhead_at_most_1.15": overhead <= 1.15,
                    "lambda_max_within_2_percent": lambda_max_agree,
                    "lambda_max_within_2_percent_same_images": same_images_agree,
                    "density_means_within_3_standard_errors": means_agree},
    }


def scale(args) -> dict:
    """ResNet-50 (torchvision, 25.6M parameters): a few Lanczos steps with the basis on the CPU; peak RSS."""
    from torchvision.models import resnet50

    torch.manual_seed(0)
    model = resnet50(weights=None).eval()
    x = torch.randn(args.scale_images, 3, args.scale_size, args.scale_size)
    y = torch.randint(0, 1000, (args.scale_images,))
    operator = LossHessian(model, F.cross_entropy, x, y)
    result, seconds, before, peak = measured(lambda: lanczos(operator, args.scale_steps, basis_device="cpu"))
    basis_mib = operator.dim * 4 / 2**20
    return {
        "benchmark": "hessian_scale", "machine": machine(torch.device("cpu")),
        "model": "torchvision resnet50 (weights=None)", "parameters": operator.dim,
        "inputs": [args.scale_images, 3, args.scale_size, args.scale_size], "lanczos_steps": result.steps,
        "seconds": round(seconds, 1), "seconds_per_step": round(seconds / result.steps, 2),
        "lambda_max": result.lambda_max, "lambda_min": result.lambda_min,
        "rss_before_mib": before, "lanczos_peak_rss_mib": peak,
        "basis_vector_mib": round(basis_mib, 1),
        # The rest of a 100-vector basis would add (100 - steps) rows of the same size, nothing else.
        "projected_peak_rss_100_steps_mib": round(peak + (100 - result.steps) * basis_mib, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="folder holding cifar10.npz (default: ../shared/data)")
    parser.add_argument("--run", help="analyse this run directory's checkpoint instead of training briefly")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--classes", type=int, nargs="+", default=[0, 4, 9])
    parser.add_argument("--max-images", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--scale", action="store_true", help="the ResNet-50 memory check instead")
    parser.add_argument("--scale-steps", type=int, default=8)
    parser.add_argument("--scale-images", type=int, default=4)
    parser.add_argument("--scale-size", type=int, default=64)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = scale(args) if args.scale else compare(args)
    print(json.dumps({**result, **process_memory()}, indent=1))


if __name__ == "__main__":
    main()
