"""`evaluate`: one pass over the test set summarised as an `EvalResult`.

The model's outputs stay on its device; the confusion matrix is built there
and copied to the host once, and every accuracy is derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from tailsam.eval.groups import FEW_BELOW, MANY_ABOVE, class_groups
from tailsam.eval.metrics import confusion_matrix, group_accuracies, per_class_accuracy_from_confusion
from tailsam.eval.predict import gather_from_processes, predict


@dataclass(frozen=True)
class EvalResult:
    """Accuracies (%) of one model on one test set.

    `per_class[c]` is None when class c has no test images. `groups` maps
    many/medium/few/head/mid/tail to class ids and `group_accuracy` to the
    accuracy over all test images of those classes (None when there are none;
    see `tailsam.eval.metrics.group_accuracy`). `confusion` is a CPU int64
    tensor [C, C], rows = true class, columns = predicted class. `mean_loss`
    is set only when `evaluate` was given a loss function.
    """

    top1: float
    num_images: int
    per_class: list[float | None]
    train_counts: list[int]
    test_counts: list[int]
    groups: dict[str, list[int]]
    group_accuracy: dict[str, float | None]
    confusion: torch.Tensor
    many_above: int = MANY_ABOVE
    few_below: int = FEW_BELOW
    mean_loss: float | None = None

    @property
    def num_classes(self) -> int:
        return len(self.per_class)

    def to_dict(self, *, include_confusion: bool = True) -> dict:
        """Plain lists, dicts, ints, floats and None, ready for `json.dumps`.

        The confusion matrix is C x C numbers; leave it out
        (`include_confusion=False`) for per-epoch logs or thousands of classes.
        """
        result = {
            "top1": self.top1,
            "num_images": self.num_images,
            "num_classes": self.num_classes,
            "per_class": list(self.per_class),
            "train_counts": list(self.train_counts),
            "test_counts": list(self.test_counts),
            "groups": {name: list(classes) for name, classes in self.groups.items()},
            "group_accuracy": dict(self.group_accuracy),
            "many_above": self.many_above,
            "few_below": self.few_below,
            "mean_loss": self.mean_loss,
        }
        if include_confusion:
            result["confusion"] = self.confusion.tolist()
        return result


def summarize(confusion: torch.Tensor, train_counts: Sequence[int], *, many_above: int = MANY_ABOVE,
              few_below: int = FEW_BELOW, mean_loss: float | None = None) -> EvalResult:
    """The `EvalResult` of a confusion matrix [C, C] (rows = true class) and the training counts.

    Raises ValueError if the matrix counts no test image.
    """
    confusion = confusion.cpu()
    test_counts = confusion.sum(dim=1)
    num_images = int(test_counts.sum())
    if num_images == 0:
        raise ValueError("the confusion matrix counts no test images; accuracy is undefined")
    groups = class_groups(train_counts, many_above=many_above, few_below=few_below)
    per_class = [None if total == 0 else accuracy
                 for accuracy, total in zip(per_class_accuracy_from_confusion(confusion).tolist(),
                                            test_counts.tolist())]
    return EvalResult(
        top1=100.0 * int(confusion.diagonal().sum()) / num_images,
        num_images=num_images,
        per_class=per_class,
        train_counts=[int(count) for count in train_counts],
        test_counts=test_counts.tolist(),
        groups=groups,
        group_accuracy=group_accuracies(confusion, groups),
        confusion=confusion,
        many_above=many_above,
        few_below=few_below,
        mean_loss=mean_loss,
    )


def evaluate(model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], train_counts: Sequence[int],
             num_classes: int | None = None, *,
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
             autocast_dtype: torch.dtype | None = None, many_above: int = MANY_ABOVE,
             few_below: int = FEW_BELOW, across_processes: bool = False) -> EvalResult:
    """Evaluate `model` on every batch of `loader`; `train_counts[c]` = training images of class c.

    `num_classes` defaults to len(train_counts) and must equal it. With
    `loss_fn(logits, labels)` the result's `mean_loss` is that loss applied
    once to all test logits, so its own reduction (e.g. a class-weighted mean)
    is honoured exactly rather than approximated by averaging batch means.
    Without it only the predicted classes are kept, not the logits.
    Group thresholds: many = count > `many_above`, few = count < `few_below`.
    With `across_processes`, each process of the default process group holds
    one shard of the test set in `loader`; the outputs of all shards are
    gathered and every process returns the result for the whole test set.
    """
    if num_classes is None:
        num_classes = len(train_counts)
    if len(train_counts) != num_classes:
        raise ValueError(f"train_counts has {len(train_counts)} entries but num_classes is {num_classes}")
    outputs, labels = predict(model, loader, autocast_dtype=autocast_dtype, keep_logits=loss_fn is not None)
    if across_processes:
        outputs, labels = gather_from_processes(outputs), gather_from_processes(labels)
    if outputs.ndim == 2 and outputs.shape[1] != num_classes:
        raise ValueError(f"the model outputs {outputs.shape[1]} logits per image but num_classes is {num_classes}")
    mean_loss = None
    if loss_fn is not None:
        with torch.inference_mode():
            mean_loss = float(loss_fn(outputs, labels))
    return summarize(confusion_matrix(outputs, labels, num_classes), train_counts,
                     many_above=many_above, few_below=few_below, mean_loss=mean_loss)
