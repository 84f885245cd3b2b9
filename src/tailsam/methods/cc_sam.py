"""CC-SAM (Class-Conditional SAM, CVPR 2023; code zzpustc/CC-SAM), as its code computes it
(../shared/METHODS.md section 6): two stages, the classifier perturbed class by class.

Stage 1, epochs 1..S (S: the cc_sam lr schedule's stage_two_after, or method.args.stage_one_epochs): MixUp
(lambda ~ U(0, 1), a permutation pi of the batch), features z = f(x_mix), logits o = W z + b, l_ori_i = lambda
CE(o_i, y_i) + (1 - lambda) CE(o_i, y_pi(i)). For each class c, g_c is the gradient over the classifier (W and
b apart) of the mean of l_ori over the batch's class-c samples; each tensor T is perturbed by e_c^T = rho_cT
sqrt(P) g_c^T / ||g_c^T||, rho_cT = r sqrt(||theta||) / (sqrt(||g_c^T||) sqrt(2) (n_c - 1)^(1/4) P^(1/4)),
with ||theta|| the norm of (W, b) themselves, P their size, n_c the class's training images and r =
method.args.noise_ratio. A sample of class c then has l_flat_i = CE((W + e_c^W) z_i + b + e_c^b, y_i) on the
same features, e held constant; the loss is (1 - kappa) mean l_ori + kappa mean l_flat (kappa =
method.args.flat_ratio), one backward, an SGD step. Only the classifier is perturbed: the paper says feature
extractor and classifier, the code perturbs the classifier.

Stage 2, epochs S + 1..E: the classifier alone re-trains on class-aware batches (no MixUp), from the final
stage-1 weights (the reference starts from its test-selected best epoch), its momentum reset. Features come
from the frozen backbone (BatchNorm statistics still move, as in the reference's train mode). With
l_i = CE(h(z_i), y_i) and class weights w_c = log(n_max / n_c + 0.01) / div, each class's feature
gradient G_c = d(mean of l over its samples)/dz, normalised over the batch, moves its features
z'_i = z_i + a w_c G_c,i / ||G_c|| (a = method.args.adversarial); the loss is s mean(w_y CE(h(z'), y))
+ (1 - s) mean l with s = min((epoch - S) / (E - S), u) (u = method.args.up_limit).

Departures from the reference: stage 1 keeps the epoch's last, partial batch (the reference drops it);
both stages run the eager model's `features` and `head` (train.compile does not apply, and the method does
not run data-parallel); the class-aware cycles of stage 2 start afresh every epoch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tailsam.data import DeviceLoader, StagedBatches
from tailsam.errors import ConfigError
from tailsam.methods.base import Method, MethodParts, StepOutput
from tailsam.methods.registry import METHODS
from tailsam.optim.schedules import LR_SCHEDULES, schedule_epoch_args

DEFAULT_ARGS = {"stage_one_epochs": None, "flat_ratio": 0.5, "noise_ratio": 1e-6, "div": 2.0, "adversarial": 1.0,
                "up_limit": 0.3}


def class_conditional_perturbation(weight: torch.Tensor, bias: torch.Tensor, features: torch.Tensor,
                                   logit_grads: torch.Tensor, labels: torch.Tensor, counts: torch.Tensor,
                                   noise_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class c, (e_c^W [C, C, D], e_c^b [C, C]) from the module docstring's formula; zero for a class
    without a sample in the batch. `logit_grads` [B, C] holds dl_i/do_i, `features` [B, D] the z_i."""
    with torch.autocast(weight.device.type, enabled=False), torch.no_grad():
        weight, bias, features, logit_grads = weight.float(), bias.float(), features.float(), logit_grads.float()
        members = F.one_hot(labels, len(counts)).float()
        members = members / members.sum(0).clamp(min=1)   # column c: 1 / (class-c samples) on its samples
        grads = (torch.einsum("bc,bk,bd->ckd", members, logit_grads, features),   # [class, out, D]
                 members.T @ logit_grads)                                           # [class, out]
        size = weight.numel() + bias.numel()
        theta_norm = torch.sqrt(weight.pow(2).sum() + bias.pow(2).sum()) + 1e-12
        scale = noise_ratio * theta_norm.sqrt() * size ** 0.25 / (math.sqrt(2) * (counts.float() - 1) ** 0.25)
        perturbations = []
        for grad in grads:
            norm = grad.flatten(1).norm(dim=1).view(-1, *[1] * (grad.ndim - 1))
            # ||e_c|| = scale_c / sqrt(||g_c||), along g_c / ||g_c||
            perturbations.append(torch.where(norm > 0, scale.view_as(norm) * grad / norm.clamp(min=1e-30) ** 1.5,
                                             torch.zeros_like(grad)))
        return perturbations[0], perturbations[1]


def retraining_weights(counts: list[int], div: float) -> torch.Tensor:
    """Stage 2's class weights w_c = log(n_max / n_c + 0.01) / div."""
    n = torch.tensor(counts, dtype=torch.float64)
    return (torch.log(n.max() / n + 0.01) / div).float()


@METHODS.register("cc-sam", paper="CC-SAM, CVPR 2023 (code: zzpustc/CC-SAM)")
class CCSAM(Method):
    """CC-SAM's two stages (see the module docstring); method.args: stage_one_epochs, flat_ratio,
    noise_ratio, div, adversarial, up_limit."""

    def __init__(self, parts: MethodParts):
        super().__init__(parts)
        args = self.settings(DEFAULT_ARGS)
        config = parts.config
        self.model = parts.model
        if not isinstance(getattr(self.model, "head", None), nn.Linear) or not hasattr(self.model, "features"):
            raise ConfigError(f"method cc-sam perturbs a linear classifier: use model.head=linear, got "
                              f"{config.model.head}")
        if (config.loss.name, config.loss.weighting, config.sam.kind) != ("ce", "none", "none"):
            raise ConfigError("method cc-sam has its own losses and perturbation: keep loss.name=ce, "
                              "loss.weighting=none and sam.kind=none")
        if min(parts.data.counts) < 2:
            raise ConfigError("method cc-sam divides by (n_c - 1)^(1/4): every class needs at least 2 training "
                              "images; lower data.ratio")
        self.stage_one_epochs = self._stage_one_epochs(args["stage_one_epochs"])
        train = parts.data.train
        if not isinstance(train, DeviceLoader):
            raise ConfigError(f"method cc-sam needs a dataset held in memory (CIFAR), got {config.data.dataset}")
        self.batches = StagedBatches(train, train.resampled("class-aware", seed=config.train.seed + 1),
                                     self.stage_one_epochs)
        self.counts = torch.tensor(parts.data.counts, device=parts.device)
        self.weights = retraining_weights(parts.data.counts, float(args["div"])).to(parts.device)
        self.flat_ratio, self.noise_ratio = float(args["flat_ratio"]), float(args["noise_ratio"])
        self.adversarial, self.up_limit = float(args["adversarial"]), float(args["up_limit"])
        self.epochs, self.adversarial_share = config.train.epochs, 0.0

    def _stage_one_epochs(self, given: int | None) -> int:
        """method.args.stage_one_epochs, by default the cc_sam lr schedule's stage_two_after (one number, so
        that train.epochs=N moves the stage boundary with the lr's); they must agree when both are set."""
        config = self.parts.config
        from_lr = (schedule_epoch_args(LR_SCHEDULES, "cc_sam", config.optim.lr_args)["stage_two_after"]
                   if config.optim.lr_schedule == "cc_sam" else None)
        if given is None and from_lr is None:
            raise ConfigError("method cc-sam needs its stage boundary: optim.lr_schedule=cc_sam (its "
                              "stage_two_after) or method.args.stage_one_epochs")
        if given is not None and from_lr is not None and int(given) != from_lr:
            raise ConfigError(f"method cc-sam: method.args.stage_one_epochs ({given}) differs from "
                              f"optim.lr_args.stage_two_after ({from_lr}); set one of them")
        epochs = int(given if given is not None else from_lr)
        if not 1 <= epochs <= config.train.epochs:
            raise ConfigError(f"method cc-sam: stage one must end within the run's {config.train.epochs} "
                              f"epochs, got epoch {epochs}")
        return epochs

    def start_epoch(self, epoch: int) -> dict:
        values = super().start_epoch(epoch)
        if epoch <= self.stage_one_epochs:
            return {**values, "stage": 1}
        if epoch == self.stage_one_epochs + 1 and self.batches.position == 0:
            self.update.optimizer.state.clear()   # stage 2 starts its own optimizer: no stage-1 momentum
        self.adversarial_share = min((epoch - self.stage_one_epochs) / (self.epochs - self.stage_one_epochs),
                                     self.up_limit)
        return {**values, "stage": 2, "adversarial_share": self.adversarial_share}

    def step(self, batch) -> StepOutput:
        images, labels = batch
        if self.batches.active is self.batches.first:
            loss, logits = self.update(self._representation_pass(images, labels))
        else:
            loss, logits = self.update(self._classifier_pass(images, labels))
        return StepOutput(loss, logits, labels)

    def _representation_pass(self, images: torch.Tensor, labels: torch.Tensor):
        """Stage 1's loss pass: MixUp, then the original and the class-conditionally perturbed losses."""
        # Host draws from the global generator (checkpointed): no device synchronisation.
        lam = float(torch.rand(()))
        order = torch.randperm(len(labels)).to(labels.device)
        mixed, other = lam * images + (1 - lam) * images[order], labels[order]
        head = self.model.head

        def loss_pass():
            features = self.model.features(mixed)
            logits = head(features).float()
            target = lam * F.one_hot(labels, len(self.counts)) + (1 - lam) * F.one_hot(other, len(self.counts))
            original = lam * F.cross_entropy(logits, labels, reduction="none") + (1 - lam) * F.cross_entropy(
                logits, other, reduction="none")
            logit_grads = logits.detach().softmax(1) - target   # d original_i / d logits_i
            e_weight, e_bias = class_conditional_perturbation(head.weight, head.bias, features, logit_grads,
                                                              labels, self.counts, self.noise_ratio)
            # (W + e_y) z + b + e_y = o + e_y z + e_y: the gradient at the perturbed classifier, e constant.
            flat_logits = logits + torch.einsum("bkd,bd->bk", e_weight[labels], features.float()) + e_bias[labels]
            flat = F.cross_entropy(flat_logits, labels, reduction="none")
            return (1 - self.flat_ratio) * original.mean() + self.flat_ratio * flat.mean(), logits

        return loss_pass

    def _classifier_pass(self, images: torch.Tensor, labels: torch.Tensor):
        """Stage 2's loss pass: the classifier on frozen features and on class-wise adversarial features."""
        with torch.no_grad(), self.update.autocast():
            features = self.model.features(images).float()
        head, share = self.model.head, self.adversarial_share
        features.requires_grad_()

        def loss_pass():
            logits = head(features).float()
            plain = F.cross_entropy(logits, labels, reduction="none")
            grads = torch.autograd.grad(plain.sum(), features, retain_graph=True)[0].detach()   # row i: dl_i/dz_i
            class_norm = torch.zeros(len(self.counts), device=grads.device).index_add_(
                0, labels, grads.pow(2).sum(1)).sqrt()[labels]
            weight = self.weights[labels]
            moved = features + (self.adversarial * weight / class_norm.clamp(min=1e-30))[:, None] * grads
            adversarial = weight * F.cross_entropy(head(moved).float(), labels, reduction="none")
            return share * adversarial.mean() + (1 - share) * plain.mean(), logits

        return loss_pass
