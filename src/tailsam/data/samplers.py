"""Epoch orders: which training images a loader visits, and how often.

Each sampler is built once from the labels and returns, per epoch, N indices
(N = number of images) drawn with the generator it is given:
  instance        a permutation: every image exactly once (the default);
  class-balanced  each draw picks a class uniformly, then an image of it;
  sqrt            classes in proportion to sqrt(n_c), then an image of it;
  class-aware     the next class of a reshuffled cycle over the classes, then the next image of a
                  reshuffled cycle over that class's images (Shen et al. 2016; CC-SAM's stage 2);
  sequential      0..N-1 in order (evaluation).
`ClassPowerSampler(labels, power)` draws classes in proportion to n_c ** power
(GLMC's re-sampled loader with weights n_y^(-q) is power 1 - q).
"""

from __future__ import annotations

from typing import Protocol

import torch

from tailsam.registry import Registry

SAMPLERS = Registry("sampler")


class Sampler(Protocol):
    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """The indices one epoch visits, in order, drawn with `generator`."""


@SAMPLERS.register("sequential")
class SequentialSampler:
    """Every image once, in stored order."""

    def __init__(self, labels: torch.Tensor):
        self.size = len(labels)

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        return torch.arange(self.size)


@SAMPLERS.register("instance")
class InstanceSampler:
    """Every image exactly once per epoch, in random order."""

    def __init__(self, labels: torch.Tensor):
        self.size = len(labels)

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        return torch.randperm(self.size, generator=generator)


class ClassPowerSampler:
    """Draws a class with probability proportional to n_c ** power, then one of its images.

    power 0 is class-balanced sampling, 0.5 square-root sampling. Draws are with
    replacement, N per epoch.
    """

    def __init__(self, labels: torch.Tensor, power: float):
        labels = torch.as_tensor(labels, device="cpu")
        self.size = len(labels)
        self.counts = torch.bincount(labels)
        self.by_class = torch.argsort(labels, stable=True)
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        present = self.counts > 0
        weights = torch.where(present, self.counts.double() ** power, torch.zeros((), dtype=torch.float64))
        self.class_probs = weights / weights.sum()

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        classes = torch.multinomial(self.class_probs, self.size, replacement=True, generator=generator)
        n = self.counts[classes]
        u = torch.rand(self.size, dtype=torch.float64, generator=generator)
        # u * n < n mathematically; the minimum guards the one rounding case u * n == n.
        within = torch.minimum((u * n).long(), n - 1)
        return self.by_class[self.starts[classes] + within]


@SAMPLERS.register("class-balanced")
def class_balanced_sampler(labels: torch.Tensor) -> ClassPowerSampler:
    return ClassPowerSampler(labels, power=0.0)


@SAMPLERS.register("sqrt")
def sqrt_sampler(labels: torch.Tensor) -> ClassPowerSampler:
    return ClassPowerSampler(labels, power=0.5)


@SAMPLERS.register("class-aware")
class ClassCycleSampler:
    """Class-aware sampling: N draws, each the next class of a cycle over the classes (reshuffled every pass)
    and then the next image of a cycle over that class's images (reshuffled every pass). Every class gets
    N / C draws give or take one, and within a class no image repeats before all have been drawn. The
    cycles start afresh each epoch."""

    def __init__(self, labels: torch.Tensor):
        labels = torch.as_tensor(labels, device="cpu")
        self.size = len(labels)
        self.classes = torch.unique(labels)
        self.members = [torch.nonzero(labels == c).flatten() for c in self.classes]

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        passes = -(-self.size // len(self.classes))
        class_slots = torch.cat([torch.randperm(len(self.classes), generator=generator)
                                 for _ in range(passes)])[:self.size]
        order = torch.empty(self.size, dtype=torch.int64)
        for slot, members in enumerate(self.members):
            positions = torch.nonzero(class_slots == slot).flatten()
            cycles = -(-len(positions) // len(members))
            images = torch.cat([members[torch.randperm(len(members), generator=generator)]
                                for _ in range(cycles)])
            order[positions] = images[:len(positions)]
        return order
