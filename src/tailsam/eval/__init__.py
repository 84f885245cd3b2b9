"""Evaluation: predictions, confusion matrix, per-class and group accuracies, text tables.

    result = evaluate(model, test_loader, train_counts)   # EvalResult, accuracies in %
    result.top1, result.group_accuracy["few"], result.per_class[9]
    json.dumps(result.to_dict())
    print(format_results({"SGD": sgd_result, "SAM": sam_result}))

Groups (from the training counts): many > 100 images, medium 20..100, few < 20
(thresholds are arguments), and head/mid/tail = thirds of the classes ranked
by count. A group's accuracy is over all test images of its classes; a group
with no test images reports None. This package never imports `tailsam.train`.
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
from tailsam.eval.table import format_results

__all__ = [
    "EvalResult", "FEW_BELOW", "MANY_ABOVE", "SHOT_GROUPS", "THIRD_GROUPS", "as_predictions", "class_groups",
    "confusion_matrix", "eval_mode", "evaluate", "format_results", "group_accuracies", "group_accuracy",
    "head_mid_tail_groups", "many_medium_few_groups", "model_device", "per_class_accuracy",
    "per_class_accuracy_from_confusion", "predict", "summarize",
]
