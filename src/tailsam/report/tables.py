"""Plain-text tables of one or more `EvalResult`s side by side (e.g. SGD vs SAM).

    print(format_results({"SGD": sgd_result, "SAM": sam_result}, class_names=names))

Rows: overall, many/medium/few, head/mid/tail, mean loss (when known), then
one row per class. The "train" column holds training images: the class's
count, or the total over the row's classes.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from tailsam.eval.evaluate import EvalResult
from tailsam.eval.groups import SHOT_GROUPS, THIRD_GROUPS

MISSING = "-"


def _named(results: EvalResult | Sequence[EvalResult] | Mapping[str, EvalResult]) -> dict[str, EvalResult]:
    if isinstance(results, EvalResult):
        return {"top-1 %": results}
    if isinstance(results, Mapping):
        return dict(results)
    return {f"run {i + 1}": result for i, result in enumerate(results)}


def _classes(count: int) -> str:
    return f"{count} class" if count == 1 else f"{count} classes"


def _accuracy(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def format_results(results: EvalResult | Sequence[EvalResult] | Mapping[str, EvalResult], *,
                   class_names: Sequence[str] | None = None, per_class: bool = True) -> str:
    """A text table of accuracies (%), one column per result; a mapping's keys name the columns.

    All results must share the training counts and group thresholds (the rows
    describe one split); otherwise ValueError. `per_class=False` leaves out
    the per-class rows (useful with thousands of classes). A group with no
    test images shows "-".
    """
    named = _named(results)
    if not named:
        raise ValueError("no results to format")
    first = next(iter(named.values()))
    for name, result in named.items():
        if (result.train_counts, result.many_above, result.few_below) != \
                (first.train_counts, first.many_above, first.few_below):
            raise ValueError(f"result {name!r} was evaluated with other training counts or group thresholds "
                             "than the first; format each split in its own table")
    if class_names is not None and len(class_names) != first.num_classes:
        raise ValueError(f"{len(class_names)} class names for {first.num_classes} classes")

    counts = first.train_counts
    runs = list(named.values())
    accuracy_rows = [(f"overall ({_classes(first.num_classes)})", str(sum(counts)),
                      [_accuracy(result.top1) for result in runs])]
    for group in (*SHOT_GROUPS, *THIRD_GROUPS):
        classes = first.groups[group]
        accuracy_rows.append((f"{group} ({_classes(len(classes))})", str(sum(counts[c] for c in classes)),
                              [_accuracy(result.group_accuracy[group]) for result in runs]))
    class_rows = []
    if per_class:
        for cls, count in enumerate(counts):
            label = f"class {cls}" + (f" {class_names[cls]}" if class_names is not None else "")
            class_rows.append((label, str(count), [_accuracy(result.per_class[cls]) for result in runs]))
    loss_rows = []
    if any(result.mean_loss is not None for result in runs):
        loss_rows.append(("mean loss", "", [MISSING if result.mean_loss is None else f"{result.mean_loss:.4f}"
                                            for result in runs]))
    accuracy_missing = any(MISSING in cells for _, _, cells in (*accuracy_rows, *class_rows))
    rows = [*accuracy_rows, *loss_rows, *class_rows]

    header = ("", "train", list(named))
    widths = [max(len(row[0]) for row in (header, *rows)), max(len(row[1]) for row in (header, *rows))]
    widths += [max(len(name), *(len(row[2][i]) for row in rows)) for i, name in enumerate(named)]

    def line(label: str, train: str, cells: list[str]) -> str:
        parts = [label.ljust(widths[0]), train.rjust(widths[1])]
        parts += [cell.rjust(width) for cell, width in zip(cells, widths[2:])]
        return "  ".join(parts).rstrip()

    lines = [f"groups by training images: many > {first.many_above}, "
             f"medium {first.few_below}..{first.many_above}, few < {first.few_below}; "
             "head/mid/tail = thirds by count",
             line(*header), *(line(*row) for row in rows)]
    if accuracy_missing:
        lines.append(f"{MISSING}: no test images in that row's classes")
    return "\n".join(lines)
