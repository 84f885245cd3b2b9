"""Evaluation: predictions, confusion matrix, per-class and group accuracies.

    result = evaluate(model, test_loader, train_counts)   # EvalResult, accuracies in %
    result.top1, result.group_accuracy["few"], result.per_class[9]
    json.dumps(result.to_dict())
    # tables of results: tailsam.report.format_results

Groups (from the training counts): many > 100 images, medium 20..100, few < 20
(thresholds are arguments), and head/mid/tail = thirds of the classes ranked
by count. A group's accuracy is over all test images of its classes; a group
with no test images reports None. This package sits below the run layer (DESIGN.md).
"""

from tailsam.eval.evaluate import EvalResult, evaluate, summarize
from tailsam.eval.groups import (
    FEW_BELOW, MANY_ABOVE, SHOT_GROUPS, THIRD_GROUPS, class_groups, head_mid_tail_groups, many_medium_few_groups,
)
from tailsam.eval.metrics import (
    as_predictions, confusion_matrix, group_accuracies, group_accuracy, per_class_accuracy,
    per_class_accuracy_from_confusion,
)
from tailsam.eval.predict import eval_mode, model_device, predict

__all__ = [
    "EvalResult", "FEW_BELOW", "MANY_ABOVE", "SHOT_GROUPS", "THIRD_GROUPS", "as_predictions", "class_groups",
    "confusion_matrix", "eval_mode", "evaluate", "group_accuracies", "group_accuracy",
    "head_mid_tail_groups", "many_medium_few_groups", "model_device", "per_class_accuracy",
    "per_class_accuracy_from_confusion", "predict", "summarize",
]
