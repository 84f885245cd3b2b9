"""The PaCo loss (Cui et al. 2021, Parametric Contrastive Learning), as its reference computes it
(../shared/METHODS.md section 3.3).

For each query i of a batch (the anchors), one softmax over the class logits and the contrast logits:
- class logits s_ic = linear(h_i)_c + log(pi_c + 1e-9), pi the training prior (not divided by T);
- contrast logits t_ia = q_i . A_a / T for every contrast entry a but i itself, A = [queries, keys, queue];
- log Z_i = log(sum_c exp s_ic + gamma sum_a exp t_ia);
- positives P(i): the entries a != i with label y_i (always its own key);
- L_i = -(beta (s_iy - log Z_i) + alpha sum_{a in P(i)} (t_ia - log Z_i)) / (beta + alpha |P(i)|), L = mean_i L_i.
With alpha = gamma = 0 it is logit-adjusted cross-entropy (Balanced Softmax) on the class logits.
"""

from __future__ import annotations

import math

import torch


def paco_loss(class_logits: torch.Tensor, queries: torch.Tensor, contrast: torch.Tensor, labels: torch.Tensor,
              contrast_labels: torch.Tensor, log_prior: torch.Tensor, *, alpha: float = 0.01, beta: float = 1.0,
              gamma: float = 1.0, temperature: float = 0.05, first: int = 0) -> torch.Tensor:
    """The mean PaCo loss of the B queries.

    class_logits [B, C] (the classifier on the pooled features, without the prior), queries [B, D]
    (normalised), contrast [M, D] whose rows first .. first + B - 1 are the queries themselves (data-
    parallel: every process's queries come first, in rank order), labels [B], contrast_labels [M],
    log_prior [C] = log(pi + 1e-9).
    """
    batch = len(labels)
    s = class_logits.float() + log_prior
    t = queries.float() @ contrast.float().T / temperature                       # [B, M]
    own = torch.zeros_like(t, dtype=torch.bool)
    rows = torch.arange(batch, device=t.device)
    own[rows, first + rows] = True                                                 # anchor i is entry first + i
    weighted_t = t + (math.log(gamma) if gamma > 0 else -math.inf)                # gamma inside the partition
    log_z = torch.logsumexp(torch.cat([s, weighted_t.masked_fill(own, -math.inf)], dim=1), dim=1)   # [B]
    positives = (contrast_labels[None, :] == labels[:, None]) & ~own
    class_term = s.gather(1, labels[:, None]).squeeze(1) - log_z
    contrast_term = ((t - log_z[:, None]) * positives).sum(1)
    per_query = -(beta * class_term + alpha * contrast_term) / (beta + alpha * positives.sum(1))
    return per_query.mean()
