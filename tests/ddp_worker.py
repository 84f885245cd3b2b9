"""`tailsam train` under torchrun for tests/test_distributed.py, and a few bare SAM steps.

`ddp_worker.py train ...` runs the tailsam command. It registers "tiny-convnet", a model without BatchNorm (whose per-process batch
statistics would make N processes differ from one), and, when TAILSAM_TEST_KILL
is "rank:epoch:step", makes that process SIGKILL itself after that update, as
a crashed node would. `ddp_worker.py sam-steps DIR` takes SAM steps on a
tiny linear model with sam_step under DDP (`sam_step_pieces` gives every
process's images), with the global and then the local perturbation, and
saves the weights to DIR/global.pt and DIR/local.pt.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from contextlib import nullcontext

import torch
from torch import nn

from tailsam.models import MODELS
from tailsam.models.heads import HEADS, PaCoHeads, build_head


class TinyConvNet(nn.Module):
    """Two convolutions, ReLU, global average pooling and a head: no layer couples the images of a batch."""

    def __init__(self, num_classes: int, head: str = "linear", in_channels: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.head = build_head(head, 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


def bn_free_paco_heads(in_features: int, num_classes: int) -> nn.Module:
    """PaCo's heads without the MLP's BatchNorm, which would normalise each process's piece by itself."""
    heads = PaCoHeads(in_features, num_classes)
    heads.projection[1] = nn.Identity()
    return heads


if "paco-bnfree" not in HEADS.names():
    HEADS.register("paco-bnfree", logits="PaCo's, without BatchNorm (tests)", method="paco")(bn_free_paco_heads)

if "tiny-convnet" not in MODELS.names():
    # Metadata as for every registered model: parameters with 10 classes, the linear head and RGB input.
    MODELS.register("tiny-convnet", params=1562, input_size=(3, 32, 32),
                    paper="none: a BatchNorm-free test model (tests/ddp_worker.py)")(TinyConvNet)


def _kill_hook(rank: int, epoch: int, step: int):
    def on_step(e: int, s: int) -> None:
        if int(os.environ.get("RANK", 0)) == rank and (e, s) == (epoch, step):
            os.kill(os.getpid(), signal.SIGKILL)
    return on_step


SAM_STEPS, SAM_RHO, SAM_LR, PIECE_SIZES = 3, 0.3, 0.5, (5, 3)   # unequal pieces on purpose


def sam_step_pieces(step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Process r's (inputs [n_r, 4], labels [n_r]) of global batch `step`, 3 classes."""
    generator = torch.Generator().manual_seed(100 + step)
    x = torch.randn(sum(PIECE_SIZES), 4, generator=generator)
    y = torch.randint(0, 3, (sum(PIECE_SIZES),), generator=generator)
    return list(zip(x.split(PIECE_SIZES), y.split(PIECE_SIZES)))


def _sam_steps(out: str) -> None:
    import torch.distributed as dist

    from tailsam.losses import build_loss
    from tailsam.optim import SAM
    from tailsam.losses import GlobalBatchLoss
    from tailsam.methods import sam_step

    dist.init_process_group("gloo")
    for mode in ("global", "local"):
        torch.manual_seed(0)
        model = nn.Linear(4, 3)
        net = nn.parallel.DistributedDataParallel(model)
        sgd = torch.optim.SGD(model.parameters(), lr=SAM_LR, momentum=0.9, weight_decay=1e-3)
        optimizer = SAM(sgd, rho=SAM_RHO)
        loss_fn = GlobalBatchLoss(build_loss("ce", [1, 1, 1]), dist.get_world_size())
        for step in range(SAM_STEPS):
            x, y = sam_step_pieces(step)[dist.get_rank()]
            sam_step(net, loss_fn, optimizer, x, y, autocast=nullcontext, freeze_bn=False,
                     local_perturbation=mode == "local")
        if dist.get_rank() == 0:
            torch.save(model.state_dict(), os.path.join(out, f"{mode}.pt"))
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "sam-steps":
        _sam_steps(sys.argv[2])
        sys.exit(0)
    import tailsam.train
    from tailsam.cli import main

    if os.environ.get("TAILSAM_TEST_KILL"):
        rank, epoch, step = map(int, os.environ["TAILSAM_TEST_KILL"].split(":"))
        tailsam.train.train = functools.partial(tailsam.train.train, on_step=_kill_hook(rank, epoch, step))
    sys.exit(main(sys.argv[1:]))
