"""GLMC (Du et al. 2023): mixture across an instance and a re-sampled batch, two heads and a consistency loss;
with SAM, the SAM paper's GLMC rows. ../shared/METHODS.md sections 1 and 2 restate the reference code.

Per step:
- batches: two augmented views of an instance-sampled batch A and of a batch B drawn with
  P(class c) proportional to n_c^(1 - q) (q = method.args.resample_q; q = 0 is uniform over the images,
  with replacement; q = 1 class-balanced), paired element-wise;
- one lambda ~ U(0, 1): x_mix = lambda A1 + (1 - lambda) B1 (MixUp of the first views) and x_cut = A2 with a
  box of B2 (CutMix of the second views; the box's side is ceil(H sqrt(1 - lambda)), its centre uniform);
- labels, for both: hard lambda e_a + (1 - lambda) e_b, and re-weighted lambda w_a e_a + (1 - lambda) w_b e_b
  with w_c proportional to n_c^(-tau), summing to C (tau = method.args.label_tau);
- loss: alpha (CE(fc(x_mix)) + CE(fc(x_cut))) on the hard labels + (1 - alpha) (the same through fc_cb) on
  the re-weighted ones + lambda_con (D(p_mix, z_cut) + D(p_cut, z_mix)), with soft-label cross-entropy,
  D(p, z) = -mean cos(p, stop-gradient z), alpha = 1 - ((epoch - 1) / E)^2 for the 1-indexed epoch of E,
  lambda_con = method.args.contrast_weight.
With SAM, as in the paper's code, the ascent climbs the classification part only; the update uses the
whole loss at w + e (the projection and predictor, without a gradient at the ascent, are not perturbed).
The network needs GLMC's heads (model.head=glmc): evaluation then reads fc_cb alone.
Training accuracy is fc's on x_mix against batch A's labels (a rough signal on mixed images; fc_cb, which
evaluation reads, takes over only as alpha falls).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tailsam.data import ClassPowerSampler, DeviceLoader, PairedBatches
from tailsam.errors import ConfigError
from tailsam.methods.base import Method, MethodParts, StepOutput
from tailsam.methods.registry import METHODS

DEFAULT_ARGS = {"resample_q": 0.0, "label_tau": 1.2, "contrast_weight": 1.0}


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean_i -sum_c t_ic log softmax(o_i)_c (targets need not sum to 1)."""
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def negative_cosine(prediction: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """-mean_i cos(p_i, z_i), with no gradient through z (SimSiam's stop-gradient)."""
    return -F.cosine_similarity(prediction.float(), projection.detach().float(), dim=1).mean()


def cutmix(images: torch.Tensor, other: torch.Tensor, lam: float, centre: tuple[int, int]) -> torch.Tensor:
    """`images` with the box of side ceil(H sqrt(1 - lam)) around `centre` (row, column) taken from `other`."""
    height, width = images.shape[2:]
    row, col = centre
    half_h, half_w = math.ceil(height * math.sqrt(1 - lam)) // 2, math.ceil(width * math.sqrt(1 - lam)) // 2
    top, bottom = min(max(row - half_h, 0), height), min(max(row + half_h, 0), height)
    left, right = min(max(col - half_w, 0), width), min(max(col + half_w, 0), width)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = other[:, :, top:bottom, left:right]
    return mixed


def label_weights(counts: list[int], tau: float) -> torch.Tensor:
    """w_c = n_c^(-tau) / sum_j n_j^(-tau) * C."""
    n = torch.tensor(counts, dtype=torch.float64)
    w = n ** -tau
    return (w / w.sum() * len(counts)).float()


@METHODS.register("glmc", paper="Du et al. 2023, Global and Local Mixture Consistency Cumulative Learning (CVPR); "
                  "with SAM: Rangwani et al. 2022 (their GLMC rows)")
class GLMC(Method):
    """GLMC's step (see the module docstring); method.args: resample_q, label_tau, contrast_weight."""

    def __init__(self, parts: MethodParts):
        super().__init__(parts)
        args = self.settings(DEFAULT_ARGS)
        config = parts.config
        if config.model.head != "glmc":
            raise ConfigError(f"method glmc needs model.head=glmc (its four heads), got {config.model.head}")
        if (config.loss.name, config.loss.weighting, config.data.sampler) != ("ce", "none", "instance"):
            raise ConfigError("method glmc has its own losses, weights and re-sampled loader: keep loss.name=ce, "
                              "loss.weighting=none, data.sampler=instance and set method.args (resample_q, "
                              "label_tau, contrast_weight)")
        train = parts.data.train
        if not isinstance(train, DeviceLoader) or train.augment is None:
            raise ConfigError(f"method glmc needs a dataset held in memory with augmentation (CIFAR), got "
                              f"{parts.config.data.dataset}")
        first = train.with_views(2)
        resampled = ClassPowerSampler(first.labels.cpu(), power=1.0 - float(args["resample_q"]))
        self.batches = PairedBatches(first, first.resampled(resampled, seed=parts.config.train.seed + 1))
        self.num_classes = len(parts.data.counts)
        self.weights = label_weights(parts.data.counts, float(args["label_tau"])).to(parts.device)
        self.contrast_weight = float(args["contrast_weight"])
        self.epochs = parts.config.train.epochs
        self.alpha = 1.0

    def start_epoch(self, epoch: int) -> dict:
        self.alpha = 1.0 - ((epoch - 1) / self.epochs) ** 2   # cumulative: from the conventional to the balanced head
        return {**super().start_epoch(epoch), "alpha": self.alpha}

    def step(self, batch) -> StepOutput:
        ((a1, a2), labels_a), ((b1, b2), labels_b) = batch
        # Host draws from the global generator (checkpointed): no device synchronisation.
        lam = float(torch.rand(()))
        centre = (int(torch.randint(0, a2.shape[2], ())), int(torch.randint(0, a2.shape[3], ())))
        x_mix, x_cut = lam * a1 + (1 - lam) * b1, cutmix(a2, b2, lam, centre)
        one_a, one_b = F.one_hot(labels_a, self.num_classes).float(), F.one_hot(labels_b, self.num_classes).float()
        hard = lam * one_a + (1 - lam) * one_b
        weighted = lam * self.weights[labels_a, None] * one_a + (1 - lam) * self.weights[labels_b, None] * one_b
        alpha = self.alpha

        def loss_pass():
            mix, cut = self.net(x_mix), self.net(x_cut)
            classification = (alpha * (soft_cross_entropy(mix.logits, hard) + soft_cross_entropy(cut.logits, hard))
                              + (1 - alpha) * (soft_cross_entropy(mix.balanced_logits, weighted)
                                               + soft_cross_entropy(cut.balanced_logits, weighted)))
            consistency = (negative_cosine(mix.prediction, cut.projection)
                           + negative_cosine(cut.prediction, mix.projection))
            return classification + self.contrast_weight * consistency, mix.logits, classification

        loss, logits = self.update(loss_pass)
        return StepOutput(loss, logits, labels_a)
