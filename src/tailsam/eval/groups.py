"""Class groups by training-set size, as long-tail papers report them.

Two partitions of the classes, both computed from the training counts only:

- many / medium / few shot (ImageNet-LT convention): many = more than
  `many_above` (100) training images, few = fewer than `few_below` (20),
  medium = the rest (20..100 inclusive with the defaults).
- head / mid / tail: the classes sorted by training count (descending, ties
  broken by lower class index first), cut into thirds of C // 3 with the
  remainder in the middle (CIFAR-10: 3/4/3, CIFAR-100: 33/34/33).

Each group is a list of class ids in ascending order.
"""

from __future__ import annotations

from typing import Sequence

from tailsam.errors import ConfigError

MANY_ABOVE = 100
FEW_BELOW = 20

SHOT_GROUPS = ("many", "medium", "few")
THIRD_GROUPS = ("head", "mid", "tail")


def many_medium_few_groups(train_counts: Sequence[int], *, many_above: int = MANY_ABOVE,
                           few_below: int = FEW_BELOW) -> dict[str, list[int]]:
    """{"many": [...], "medium": [...], "few": [...]}: class c is many if count > many_above, few if < few_below.

    Raises ConfigError if the thresholds would put a count in both many and few
    (few_below > many_above + 1).
    """
    if few_below > many_above + 1:
        raise ConfigError(f"few_below ({few_below}) must be at most many_above + 1 ({many_above + 1}), "
                          "or a class could be both many-shot and few-shot")
    groups: dict[str, list[int]] = {name: [] for name in SHOT_GROUPS}
    for cls, count in enumerate(train_counts):
        if count > many_above:
            groups["many"].append(cls)
        elif count < few_below:
            groups["few"].append(cls)
        else:
            groups["medium"].append(cls)
    return groups


def head_mid_tail_groups(train_counts: Sequence[int]) -> dict[str, list[int]]:
    """{"head": [...], "mid": [...], "tail": [...]}: thirds of the classes ranked by training count.

    Ranking is by count descending, ties by class index ascending; head and
    tail get C // 3 classes each and mid the rest. With fewer than 3 classes
    head and tail are empty.
    """
    ranked = sorted(range(len(train_counts)), key=lambda cls: (-int(train_counts[cls]), cls))
    third = len(ranked) // 3
    return {
        "head": sorted(ranked[:third]),
        "mid": sorted(ranked[third:len(ranked) - third]),
        "tail": sorted(ranked[len(ranked) - third:]),
    }


def class_groups(train_counts: Sequence[int], *, many_above: int = MANY_ABOVE,
                 few_below: int = FEW_BELOW) -> dict[str, list[int]]:
    """Both partitions in one dict, keys many, medium, few, head, mid, tail."""
    return {**many_medium_few_groups(train_counts, many_above=many_above, few_below=few_below),
            **head_mid_tail_groups(train_counts)}
