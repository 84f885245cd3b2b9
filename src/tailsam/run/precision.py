"""Device and numeric precision of a run, resolved once from the config.

`train.precision=auto` is resolved when a run is created (`resolve_auto`) and
the result is what the run's config.json stores, so a resumed run keeps its
precision on whatever machine it resumes. How auto chooses, by measurement
(`benchmarks/train_step.py`, ResNet-32, batch 128, SAM):

- CPU with native bf16 instructions (`amx_bf16` or `avx512_bf16` among the
  flags of /proc/cpuinfo), for the models registered with `cpu_bf16` (the
  CIFAR ResNets): bf16 autocast. AMD EPYC with avx512_bf16, 2 threads: fp32
  326.5 images/s, bf16 503.6 (1.54x); an Intel CPU with AMX: 2.1x.
- Other models on such a CPU: fp32. torchvision's ResNet-50 under bf16 on
  that AMD CPU gave two different results from two identical runs (fp32: the
  same), which would break exact resume.
- Any other CPU (or no /proc/cpuinfo to read): fp32. Without those units
  bf16 is emulated and a SAM step ran 3x slower than fp32.
- CUDA: fp32. On an H200 ResNet-32's SAM step is bound by kernel launches and
  bf16 autocast ran at 0.8x fp32's speed (its casts are extra kernels).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from tailsam.errors import ConfigError
from tailsam.models import MODELS

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# x86 flags of instructions that compute bf16 dot products natively (oneDNN uses them for bf16 convolutions).
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def resolve_device(name: str) -> torch.device:
    """"auto" is the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA device is visible; use train.device=cpu or auto")
    return device


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> dict:
    """This CPU's model name and its bf16 flags (for env.json: every CPU figure names its CPU).

    Read from /proc/cpuinfo; {"model": platform.processor()} where there is none (not Linux).
    """
    return {"model": _cpuinfo_field(cpuinfo, "model name") or platform.processor() or platform.machine(),
            "bf16_flags": sorted(cpu_flags(cpuinfo) & BF16_CPU_FLAGS)}


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags the kernel reports for this CPU; empty where there is no /proc/cpuinfo (not Linux)."""
    return frozenset((_cpuinfo_field(cpuinfo, "flags") or "").split())


def _cpuinfo_field(cpuinfo: str | Path, name: str) -> str | None:
    """The first processor's `name` line of /proc/cpuinfo, None when absent or unreadable."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def auto_precision(device: torch.device, model: str, flags: frozenset[str] | None = None) -> str:
    """What `train.precision=auto` means for `model` on `device` (module docstring).

    bf16 on a CPU with bf16 units for a model registered with `cpu_bf16`, else
    fp32. `flags` are the CPU's feature flags (default: this machine's, `cpu_flags()`).
    """
    if device.type != "cpu" or model not in MODELS or not MODELS.get(model).info.cpu_bf16:
        return "fp32"
    flags = cpu_flags() if flags is None else flags
    return "bf16" if flags & BF16_CPU_FLAGS else "fp32"


def resolve_auto(name: str, device: torch.device, model: str, flags: frozenset[str] | None = None) -> str:
    """`name` itself, or for "auto" the precision `auto_precision` picks for `model` on `device`."""
    return auto_precision(device, model, flags) if name == "auto" else name


@dataclass(frozen=True)
class Precision:
    """fp32, or autocast to bf16/fp16 (fp16 with a gradient scaler); weights stay fp32."""

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, None for fp32."""
        return _DTYPES.get(self.name)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device_type) if self.name == "fp16" else None


def resolve_precision(name: str, device: torch.device) -> Precision:
    """The Precision of a resolved `train.precision` (fp32, bf16 or fp16) on `device`."""
    if name not in ("fp32", *_DTYPES):
        raise ValueError(f"precision {name!r} is not resolved: resolve train.precision=auto first (resolve_auto)")
    return Precision(name, device.type)
