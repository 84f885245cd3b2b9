"""tailsam.eval against hand computations on tiny hand-written examples."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tailsam.data import DeviceLoader, longtail_counts
from tailsam.errors import ConfigError
from tailsam.eval import (
    EvalResult, class_groups, confusion_matrix, evaluate, group_accuracies, head_mid_tail_groups,
    many_medium_few_groups, per_class_accuracy, predict, summarize,
)
from tailsam.report import format_results

CIFAR10_LT_100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]

# Three classes, nine test images: class 0 gets 2 of 3 right, class 1 both, class 2 half of 4.
LABELS = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
PREDICTIONS = torch.tensor([0, 1, 0, 1, 1, 2, 0, 2, 1])


def test_confusion_matrix_matches_hand_count():
    expected = torch.tensor([[2, 1, 0],
                             [0, 2, 0],
                             [1, 1, 2]])
    assert torch.equal(confusion_matrix(PREDICTIONS, LABELS, 3), expected)


def test_confusion_matrix_reduces_logits_by_argmax():
    logits = F.one_hot(PREDICTIONS, 3).float() * 5.0
    assert torch.equal(confusion_matrix(logits, LABELS, 3), confusion_matrix(PREDICTIONS, LABELS, 3))


def test_per_class_accuracy_matches_hand_count():
    accuracy = per_class_accuracy(PREDICTIONS, LABELS, 3)
    assert accuracy.tolist() == pytest.approx([200 / 3, 100.0, 50.0])


def test_per_class_accuracy_is_nan_for_class_without_test_images():
    accuracy = per_class_accuracy(torch.tensor([0, 1]), torch.tensor([0, 1]), 3)
    assert accuracy[:2].tolist() == [100.0, 100.0] and math.isnan(accuracy[2])


def test_out_of_range_class_is_an_error():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)


def test_many_medium_few_on_cifar10_lt():
    # 139 > 100 is many; 83 and 50 are in 20..100; nothing is below 20.
    groups = many_medium_few_groups(CIFAR10_LT_100)
    assert groups == {"many": [0, 1, 2, 3, 4, 5, 6, 7], "medium": [8, 9], "few": []}


def test_many_medium_few_boundaries_and_thresholds():
    counts = [101, 100, 20, 19, 5, 100]
    assert many_medium_few_groups(counts) == {"many": [0], "medium": [1, 2, 5], "few": [3, 4]}
    assert many_medium_few_groups(counts, many_above=19, few_below=6) == {
        "many": [0, 1, 2, 5], "medium": [3], "few": [4]}


def test_overlapping_thresholds_are_a_config_error():
    with pytest.raises(ConfigError, match="few_below"):
        many_medium_few_groups([10], many_above=10, few_below=12)


def test_head_mid_tail_thirds():
    assert head_mid_tail_groups(CIFAR10_LT_100) == {"head": [0, 1, 2], "mid": [3, 4, 5, 6], "tail": [7, 8, 9]}
    groups = head_mid_tail_groups(longtail_counts(500, 100, ratio=100))
    assert groups == {"head": list(range(33)), "mid": list(range(33, 67)), "tail": list(range(67, 100))}


def test_head_mid_tail_ranks_by_count_then_class_index():
    # Ranked: 1, 2, 5 (7 each), 0, 4 (5 each), 3  ->  head 1, 2 | mid 5, 0 | tail 4, 3.
    assert head_mid_tail_groups([5, 7, 7, 3, 5, 7]) == {"head": [1, 2], "mid": [0, 5], "tail": [3, 4]}
    # Unsorted counts: the tail is the smallest classes wherever they sit.
    assert head_mid_tail_groups([10, 500, 40]) == {"head": [1], "mid": [2], "tail": [0]}


# Four classes; class 3 has no test images. Class 1 has twice class 0's test images,
# so the many-shot accuracy (over images) differs from the mean of per-class accuracies.
GROUP_COUNTS = [300, 150, 40, 5]
GROUP_LABELS = torch.tensor([0, 0, 1, 1, 1, 1, 2, 2])
GROUP_PREDICTIONS = torch.tensor([0, 0, 1, 0, 2, 1, 2, 3])


def test_group_accuracies_are_over_images_and_none_when_empty():
    groups = class_groups(GROUP_COUNTS)
    assert groups == {"many": [0, 1], "medium": [2], "few": [3], "head": [0], "mid": [1, 2], "tail": [3]}
    accuracies = group_accuracies(confusion_matrix(GROUP_PREDICTIONS, GROUP_LABELS, 4), groups)
    assert accuracies == {"many": pytest.approx(400 / 6), "medium": 50.0, "few": None,
                          "head": 100.0, "mid": 50.0, "tail": None}
    assert group_accuracies(confusion_matrix(GROUP_PREDICTIONS, GROUP_LABELS, 4), {"none": []}) == {"none": None}


class Linear4(nn.Module):
    """A fixed linear classifier over 2x2 single-channel images, with a BatchNorm to watch modes."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm2d(1)
        self.linear = nn.Linear(4, 3)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 0, 0, -1], [0, 1, 0, 0], [-1, 0, 1, 0.5]]))
            self.linear.bias.copy_(torch.tensor([0.0, -0.1, 0.2]))

    def forward(self, images):
        return self.linear(self.norm(images).flatten(1))


def tiny_batches():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(10, 1, 2, 2, generator=generator)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])
    return [(images[i:i + 4], labels[i:i + 4]) for i in range(0, 10, 4)], images, labels


def test_evaluate_equals_direct_computation():
    model = Linear4()
    batches, images, labels = tiny_batches()
    result = evaluate(model, batches, [200, 50, 10], loss_fn=nn.CrossEntropyLoss())

    with torch.no_grad():
        logits = model.linear(images.flatten(1) / math.sqrt(1 + model.norm.eps))  # fresh BN stats: identity
    predicted = logits.argmax(1)
    correct = predicted == labels
    assert result.top1 == pytest.approx(100.0 * correct.float().mean().item())
    assert result.num_images == 10 and result.test_counts == [3, 3, 4]
    for cls in range(3):
        assert result.per_class[cls] == pytest.approx(100.0 * correct[labels == cls].float().mean().item())
    assert result.group_accuracy["many"] == pytest.approx(result.per_class[0])
    assert result.group_accuracy["few"] == pytest.approx(result.per_class[2])
    assert result.mean_loss == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)
    expected_confusion = torch.zeros(3, 3, dtype=torch.int64)
    for true, guess in zip(labels.tolist(), predicted.tolist()):
        expected_confusion[true, guess] += 1
    assert torch.equal(result.confusion, expected_confusion)


def test_evaluate_with_device_loader():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    images = np.random.default_rng(0).integers(0, 256, size=(7, 2, 2, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    loader = DeviceLoader(images, labels, batch_size=3, mean=(0.5,) * 3, std=(0.25,) * 3, sampler="sequential")
    result = evaluate(model, loader, [300, 60, 6])
    normalised = (torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        predicted = model(normalised).argmax(1)
    assert result.top1 == pytest.approx(100.0 * (predicted == torch.as_tensor(labels)).float().mean().item())
    assert result.mean_loss is None


def test_predict_restores_each_module_mode():
    model = Linear4()
    model.train()
    model.norm.eval()  # frozen BatchNorm inside a training model must stay frozen
    batches, _, _ = tiny_batches()
    logits, labels = predict(model, batches)
    assert model.training and model.linear.training and not model.norm.training
    assert logits.shape == (10, 3) and logits.dtype == torch.float32 and labels.dtype == torch.int64
    model.eval()
    predict(model, batches)
    assert not any(module.training for module in model.modules())


def test_predict_runs_in_eval_mode_and_can_keep_only_predictions():
    model = Linear4()
    model.train()  # in train mode BatchNorm would use batch statistics
    batches, images, _ = tiny_batches()
    predictions, _ = predict(model, batches, keep_logits=False)
    with torch.no_grad():
        expected = model.eval()(images).argmax(1)
    assert torch.equal(predictions, expected)


def test_predict_under_bf16_autocast_returns_float32():
    logits, _ = predict(Linear4(), tiny_batches()[0], autocast_dtype=torch.bfloat16)
    assert logits.dtype == torch.float32 and logits.shape == (10, 3)


def test_predict_rejects_empty_loader():
    with pytest.raises(ValueError, match="no batches"):
        predict(Linear4(), [])


def test_to_dict_is_plain_json():
    result = evaluate(Linear4(), tiny_batches()[0], [200, 50, 10], loss_fn=nn.CrossEntropyLoss())
    restored = json.loads(json.dumps(result.to_dict()))
    assert restored["top1"] == result.top1 and restored["confusion"] == result.confusion.tolist()
    assert restored["groups"]["many"] == [0] and restored["group_accuracy"]["head"] == result.group_accuracy["head"]
    assert "confusion" not in result.to_dict(include_confusion=False)


def test_to_dict_keeps_none_for_empty_groups():
    result = evaluate(Linear4(), tiny_batches()[0], [500, 400, 300])
    restored = json.loads(json.dumps(result.to_dict()))
    assert restored["group_accuracy"]["few"] is None and restored["group_accuracy"]["medium"] is None


def make_result(predictions, counts=GROUP_COUNTS) -> EvalResult:
    return summarize(confusion_matrix(predictions, GROUP_LABELS, 4), counts)


def test_format_results_side_by_side():
    sgd = make_result(GROUP_PREDICTIONS)
    sam = make_result(GROUP_LABELS)  # every prediction right
    table = format_results({"SGD": sgd, "SAM": sam}, class_names=["a", "b", "c", "d"])
    lines = table.splitlines()
    assert lines[1].split() == ["train", "SGD", "SAM"]
    assert lines[2].split() == ["overall", "(4", "classes)", "495", "62.50", "100.00"]
    assert "many (2 classes)" in table and "tail (1 class)" in table
    assert lines[-2].split() == ["class", "3", "d", "5", "-", "-"]
    assert lines[-1].startswith("-: no test images")
    assert "class 0 a" in format_results(sgd, class_names="abcd")
    assert "class 0" not in format_results([sgd, sam], per_class=False)


def test_format_results_rejects_different_splits():
    with pytest.raises(ValueError, match="other training counts"):
        format_results([make_result(GROUP_PREDICTIONS), make_result(GROUP_PREDICTIONS, [300, 150, 40, 40])])
