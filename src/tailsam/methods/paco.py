"""PaCo (Cui et al. 2021, Parametric Contrastive Learning) and PaCo+SAM (../shared/METHODS.md sections 3-4).

Per step, in this order (the order is what makes PaCo+SAM right):
1. momentum-update the key encoder from the model's unperturbed weights (m = method.args.momentum);
2. compute the keys of the key view without gradient, and take the queue as it is (a snapshot);
3. the loss pass: the model on the query view gives the class logits and the queries; the PaCo loss
   (tailsam.losses.paco) over [queries, keys, queue] with the training prior. With SAM the pass runs at w
   and at w + e with the same keys and the same queue snapshot;
4. after the update, enqueue this batch's keys once.
The network needs PaCo's heads (model.head=paco): evaluation reads the linear classifier without the prior.
The key encoder (a copy of the whole network, classifier included, as in the reference) and the queue live
in `self.extra` and resume with the run.

The views are the reference's (tailsam.data.views: AutoAugment and Cutout for the query, SimCLR-style for
the key), made image by image on the CPU, between steps (on a GPU the model waits for them). Data-parallel,
every process contrasts its queries with the queries (gathered with their gradients) and the keys of the
whole global batch, in rank order, and enqueues the global batch's keys. So N processes take the step one
process takes with the global batch when no layer couples the images of a piece
(tests/test_distributed.py, on a BatchNorm-free encoder); with BatchNorm each process normalises its own
piece, as in any DDP run without train.sync_bn. (MoCo and the PaCo reference gather the keys only, for
the queue, and contrast each process's queries with its own keys and the queue.) The contrast runs in fp32
whatever the autocast precision: at T = 0.05 a bf16 rounding of the features would move the logits by ~0.05.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as distributed_nn

from tailsam.data import DeviceLoader
from tailsam.data.views import paco_query_view, simclr_key_view
from tailsam.errors import ConfigError
from tailsam.losses.paco import paco_loss
from tailsam.methods.base import Method, MethodParts, StepOutput
from tailsam.methods.momentum import KeyQueue, momentum_update
from tailsam.methods.registry import METHODS
from tailsam.models import HEADS

DEFAULT_ARGS = {"alpha": 0.01, "beta": 1.0, "gamma": 1.0, "temperature": 0.05, "queue": 1024, "momentum": 0.999}


@METHODS.register("paco", paper="Cui et al. 2021, Parametric Contrastive Learning (ICCV); with SAM: "
                  "Rangwani et al. 2022 (no public code; METHODS.md section 4)", data_parallel=True)
class PaCo(Method):
    """PaCo's step (see the module docstring); method.args: alpha, beta, gamma, temperature, queue, momentum."""

    def __init__(self, parts: MethodParts):
        super().__init__(parts)
        config = parts.config
        args = self.settings(DEFAULT_ARGS)
        if HEADS.get(config.model.head).info.method != "paco":
            raise ConfigError(f"method paco needs model.head=paco (classifier and projection), got {config.model.head}")
        if config.sam.kind != "none" and config.sam.perturbation == "local":
            raise ConfigError("method paco contrasts every process's queries, so sam.perturbation=local would not "
                              "be a per-process perturbation: use sam.perturbation=global")
        if args["gamma"] < 0 or args["alpha"] < 0 or args["beta"] < 0 or args["alpha"] + args["beta"] <= 0:
            raise ConfigError("method paco needs alpha, beta, gamma >= 0 and alpha + beta > 0, got "
                              f"alpha={args['alpha']}, beta={args['beta']}, gamma={args['gamma']}")
        if not float(args["queue"]).is_integer() or args["queue"] < 1:
            raise ConfigError(f"method.args.queue must be a whole number of keys, got {args['queue']}")
        if (config.loss.name, config.loss.weighting) != ("ce", "none"):
            raise ConfigError("method paco has its own loss and prior: keep loss.name=ce and loss.weighting=none, "
                              "and set method.args (alpha, beta, gamma, temperature)")
        train = parts.data.train
        if not isinstance(train, DeviceLoader) or train.images.shape[-1] != 3:
            raise ConfigError(f"method paco needs colour images held in memory (CIFAR), got {config.data.dataset}")
        self.batches = train.with_view_transforms(paco_query_view(train.height), simclr_key_view(train.height))
        self.batches.drop_last = True   # as the reference: the queue takes whole batches
        self.args = {key: float(value) for key, value in args.items()}
        counts = torch.tensor(parts.data.counts, dtype=torch.float64)
        self.log_prior = torch.log(counts / counts.sum() + 1e-9).float().to(parts.device)
        key_encoder = copy.deepcopy(parts.model)
        key_encoder.requires_grad_(False)
        queue_dim = parts.model.head.projection[-1].out_features
        self.extra["key_encoder"] = key_encoder
        self.extra["queue"] = KeyQueue(int(args["queue"]), queue_dim, len(parts.data.counts),
                                       train.batch_size * train.world_size).to(parts.device)

    def step(self, batch) -> StepOutput:
        (query_view, key_view), labels = batch
        key_encoder, queue = self.extra["key_encoder"], self.extra["queue"]
        momentum_update(key_encoder, self.parts.model, self.args["momentum"])   # from w, before any pass
        with torch.no_grad():
            keys = _gathered(key_encoder(key_view).query)             # the global batch's, in rank order
        all_labels = _gathered(labels)
        queue_keys, queue_labels = queue.keys.clone(), queue.labels.clone()   # the same in SAM's two passes
        contrast_labels = torch.cat([all_labels, all_labels, queue_labels])
        first = dist.get_rank() * len(labels) if _distributed() else 0   # this process's queries among all
        a = self.args

        def loss_pass():
            out = self.net(query_view)
            own = out.query.float()   # the contrast in fp32 (module docstring)
            queries = torch.cat(distributed_nn.all_gather(own)) if _distributed() else own
            contrast = torch.cat([queries, keys.float(), queue_keys.float()])
            loss = paco_loss(out.logits, own, contrast, labels, contrast_labels, self.log_prior,
                             alpha=a["alpha"], beta=a["beta"], gamma=a["gamma"], temperature=a["temperature"],
                             first=first)
            return loss, out.logits

        loss, logits = self.update(loss_pass)
        queue.push(keys, all_labels)
        return StepOutput(loss, logits, labels)


def _distributed() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def _gathered(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's `tensor` (equal shapes: whole batches), concatenated in rank order; no gradient."""
    if not _distributed():
        return tensor
    pieces = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(pieces, tensor.contiguous())
    return torch.cat(pieces)
