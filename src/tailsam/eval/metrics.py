"""Confusion matrix and accuracies, computed on whatever device the predictions live on.

Accuracies are percentages. Every function takes either predicted classes
(int [N]) or logits ([N, C], reduced by argmax) together with the true labels.
"""

from __future__ import annotations

import torch


def as_predictions(outputs: torch.Tensor) -> torch.Tensor:
    """Predicted classes [N] from logits [N, C] (argmax) or from predicted classes [N] (as int64)."""
    if outputs.ndim == 2:
        return outputs.argmax(dim=1)
    if outputs.ndim == 1:
        return outputs.long()
    raise ValueError(f"expected predicted classes [N] or logits [N, C], got shape {list(outputs.shape)}")


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts [C, C] (int64, on the inputs' device): entry [t, p] = images of true class t predicted as p.

    One `torch.bincount` over the pair index t * C + p. Raises ValueError when a
    label or prediction lies outside [0, num_classes) or the lengths differ.
    """
    predictions = as_predictions(predictions)
    labels = labels.long()
    if predictions.shape != labels.shape:
        raise ValueError(f"{predictions.numel()} predictions but {labels.numel()} labels")
    # bincount would silently file an out-of-range class under a neighbouring cell.
    out_of_range = (labels < 0) | (labels >= num_classes) | (predictions < 0) | (predictions >= num_classes)
    if bool(out_of_range.any()):
        raise ValueError(f"labels and predictions must lie in [0, {num_classes}); "
                         f"labels span [{int(labels.min())}, {int(labels.max())}], "
                         f"predictions [{int(predictions.min())}, {int(predictions.max())}]")
    pairs = labels * num_classes + predictions
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy_from_confusion(confusion: torch.Tensor) -> torch.Tensor:
    """Accuracy (%) of each true class [C] (float64); NaN for a class with no test images."""
    correct = confusion.diagonal().double()
    total = confusion.sum(dim=1).double()
    return 100.0 * correct / total


def per_class_accuracy(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Accuracy (%) of each true class [C] (float64, inputs' device); NaN for a class absent from `labels`."""
    return per_class_accuracy_from_confusion(confusion_matrix(predictions, labels, num_classes))


def group_accuracy(confusion: torch.Tensor, classes: list[int]) -> float | None:
    """Accuracy (%) over all test images whose true class is in `classes`; None if there are none.

    This is the mean over the group's images, so with a balanced test set it
    equals the plain mean of the group's per-class accuracies, and otherwise
    weights each class by its number of test images. None (never NaN) when the
    group is empty or has no test images.
    """
    if not classes:
        return None
    rows = confusion[classes]
    total = int(rows.sum())
    if total == 0:
        return None
    correct = int(rows.gather(1, torch.as_tensor(classes, device=rows.device).unsqueeze(1)).sum())
    return 100.0 * correct / total


def group_accuracies(confusion: torch.Tensor, groups: dict[str, list[int]]) -> dict[str, float | None]:
    """`group_accuracy` of each named group, in the order of `groups`."""
    return {name: group_accuracy(confusion, classes) for name, classes in groups.items()}
