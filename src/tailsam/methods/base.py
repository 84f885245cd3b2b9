"""What a method is to the training loop: its batches, `start_epoch`, `step`, and its state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Protocol

import torch
from torch import nn

from tailsam.config import Config
from tailsam.data import RunData
from tailsam.errors import ConfigError
from tailsam.losses import DRW, ClassCountLoss
from tailsam.methods.steps import Autocast, LossFn, LossPass, SAMUpdate, SGDUpdate
from tailsam.optim import SAM


class StepOutput(NamedTuple):
    """One step's result, detached and on the device (reading it would wait for the device)."""

    loss: torch.Tensor     # the loss at w (data-parallel: this process's value; their mean is the global batch's)
    logits: torch.Tensor   # logits at w of the images whose training accuracy is counted
    labels: torch.Tensor


class Batches(Protocol):
    """What the loop iterates: one epoch per `for` pass, resumable at (epoch, position)."""

    epoch: int       # epochs completed
    position: int    # batches of the current epoch handed out

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


Update = Callable[[LossPass], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class MethodParts:
    """What the run builds before the method (tailsam.run.build)."""

    config: Config
    model: nn.Module              # the network, eager: checkpoints and evaluation read it
    net: nn.Module                # what the passes run: `model`, or DDP around it, or compiled
    criterion: ClassCountLoss     # the run's loss (its class weights follow DRW)
    loss_fn: LossFn               # `criterion`, exact over the global batch when data-parallel
    drw: DRW | None
    data: RunData
    device: torch.device


class Method(ABC):
    """One way to train: the batches it takes, what a step computes, and how the weights move.

    A method owns:
    - its extra modules, in `self.extra` (saved in the checkpoint under "method",
      trained when they have parameters: the optimizer covers `parameters()`);
    - its batches, `self.batches` (default: the run's training loader);
    - its loss pieces, in `step(batch)`, which builds a loss pass and hands it to
      `self.update` (SGD or SAM, set by the run once the optimizer exists).
    The loop only calls `start_epoch(epoch)` and `step(batch)` and checkpoints
    `state_dict()` and `batches.state_dict()`. A step should not wait for the host
    (no `.item()`, no branch on a tensor's value), so that it can be captured in a CUDA graph.
    """

    def __init__(self, parts: MethodParts):
        self.parts = parts
        self.net, self.loss_fn, self.criterion = parts.net, parts.loss_fn, parts.criterion
        self.batches: Batches = parts.data.train
        self.extra = nn.ModuleDict()
        self.update: Update | None = None   # set by the run with make_update

    def settings(self, defaults: dict[str, Any]) -> dict[str, Any]:
        """method.args over `defaults`; a ConfigError names an unknown setting and the valid ones."""
        name, given = self.parts.config.method.name, self.parts.config.method.args
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ConfigError(f"method {name} has no setting {', '.join(unknown)}; valid: {', '.join(defaults)}")
        return {**defaults, **given}

    def parameters(self) -> Iterator[nn.Parameter]:
        """The trained parameters of the method's own modules (the model's are the run's); frozen ones,
        such as a momentum encoder's, are left out of the optimizer."""
        return (p for p in self.extra.parameters() if p.requires_grad)

    def start_epoch(self, epoch: int) -> dict:
        """Set up `epoch` (1-indexed): training mode, DRW's class weights; returns values for the epoch's log."""
        self.net.train()
        self.extra.train()
        if self.parts.drw is None:
            return {"drw": False}
        self.criterion.set_weight(self.parts.drw.weight_at(epoch))
        return {"drw": self.criterion.weight is not None}

    def make_update(self, optimizer: torch.optim.Optimizer, *, autocast: Autocast,
                    scaler: torch.amp.GradScaler | None, local_perturbation: bool) -> Update:
        """How the weights move (the run calls this once the optimizer exists): SAM with a SAM optimizer
        (sam.kind=sam or asam), SGD otherwise. A method with its own update (grouped SAM) overrides it."""
        if isinstance(optimizer, SAM):
            return SAMUpdate(optimizer, self.net, autocast=autocast, freeze_bn=self.parts.config.sam.freeze_bn,
                             scaler=scaler, local_perturbation=local_perturbation)
        return SGDUpdate(optimizer, autocast=autocast, scaler=scaler)

    @abstractmethod
    def step(self, batch: Any) -> StepOutput:
        """Train on one batch of `self.batches`."""

    def state_dict(self) -> dict:
        """Tensors only (weights_only=True loads it): the extra modules' parameters and buffers."""
        return self.extra.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.extra.load_state_dict(state)
