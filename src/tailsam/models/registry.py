"""The model registry, which every model file registers into."""

from dataclasses import dataclass

from tailsam.registry import Registry


@dataclass(frozen=True)
class ModelInfo:
    params: int                          # parameter count with 10 classes, the linear head, 3 input channels
    input_size: tuple[int, int, int]     # (C, H, W) it was designed for
    paper: str
    # bf16 training on a CPU with bf16 units was measured to pay and to stay reproducible,
    # so train.precision=auto may choose it.
    cpu_bf16: bool = False


MODELS = Registry("model", ModelInfo)
