"""Device and numeric precision of a run, resolved once from the config."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tailsam.errors import ConfigError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

def resolve_device(name: str) -> torch.device:
    """"auto" is the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA device is visible; use train.device=cpu or auto")
    return device


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
    return Precision(name, device.type)
