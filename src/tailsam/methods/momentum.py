"""What momentum-contrast methods (PaCo) keep besides the model: a key encoder that follows the model by
an exponential moving average, and a FIFO queue of past keys with their labels. Both are modules whose
state is buffers, so a method puts them in `self.extra` and they resume with the run."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tailsam.errors import ConfigError


@torch.no_grad()
def momentum_update(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """theta_target <- m theta_target + (1 - m) theta_source, parameter by parameter (buffers stay the target's)."""
    targets, sources = list(target.parameters()), list(source.parameters())
    torch._foreach_mul_(targets, momentum)
    torch._foreach_add_(targets, sources, alpha=1.0 - momentum)


class KeyQueue(nn.Module):
    """K keys (D-dim) and their labels, first in first out; each step enqueues one global batch.

    Filled at first as the reference fills it: a K x D Gaussian normalised along the K axis (the rows are
    not unit vectors) with uniformly random labels, which the first K / B steps push out.
    """

    def __init__(self, size: int, dim: int, num_classes: int, batch: int):
        super().__init__()
        if size % batch:
            raise ConfigError(f"a queue of {size} keys must hold a whole number of global batches of {batch}: "
                              "set optim.batch_size to a divisor of the queue size (e.g. 128 for 1024)")
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=0))
        self.register_buffer("labels", torch.randint(num_classes, (size,)))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def push(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        """Replace the oldest len(keys) entries, on the device (no host synchronisation)."""
        slots = (self.pointer + torch.arange(len(keys), device=keys.device)) % len(self.keys)
        self.keys[slots] = keys.detach().to(self.keys.dtype)
        self.labels[slots] = labels
        self.pointer.copy_((self.pointer + len(keys)) % len(self.keys))
