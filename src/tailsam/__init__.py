"""tailsam: long-tailed classification with SAM and per-class Hessian spectra.

Words, as every module and message uses them:
- run: one training in one run directory (`--out`): config.json, metrics.jsonl, checkpoints/last.pt,
  final.json; a run may take several sessions (stopped, then resumed by the same command).
- epoch: one pass over the training batches, 1-indexed everywhere (epoch 1 is the first; a schedule,
  DRW and metrics.jsonl name epochs so). A loader's `epoch` counts the epochs completed.
- step: one update of the weights (SGD: one forward and backward; SAM: two). In the Hessian analysis a
  (Lanczos) step is one Hessian-vector product.
- method: what a step computes and how it moves the weights (tailsam.methods); recipe: a named,
  paper-given Config (tailsam.recipes).
"""

__version__ = "0.1.0"
