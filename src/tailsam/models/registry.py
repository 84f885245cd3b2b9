"""The model registry, which every model file registers into.

Metadata of every entry: `params` (parameter count with 10 classes, the linear
head and 3 input channels), `input_size` (C, H, W it was designed for), `paper`,
and `cpu_bf16` (optional, default False): bf16 training on a CPU with bf16 units
was measured to pay and to stay reproducible, so train.precision=auto may choose it.
"""

from tailsam.registry import Registry

MODELS = Registry("model")
