"""Long-tailed subsets: the counts formula and the exact selection protocol of Cao et al. (2019)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from tailsam.cli import main
from tailsam.data import longtail_counts, select_longtail
from tailsam.errors import ConfigError, DataError


def test_cifar10_ratio_100_counts_are_the_papers():
    assert longtail_counts(5000, 10, "exp", 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


@pytest.mark.parametrize("n_max, classes", [(5000, 10), (500, 100)])
@pytest.mark.parametrize("ratio", [10, 50, 100, 200])
def test_exp_counts_follow_the_formula(n_max, classes, ratio):
    expected = [int(n_max * (1 / ratio) ** (c / (classes - 1))) for c in range(classes)]
    counts = longtail_counts(n_max, classes, "exp", ratio)
    assert counts == expected
    assert counts[0] == n_max and counts[-1] == int(n_max / ratio)
    assert all(a >= b for a, b in zip(counts, counts[1:]))


@pytest.mark.parametrize("n_max, classes", [(5000, 10), (500, 100)])
@pytest.mark.parametrize("ratio", [10, 100])
def test_step_counts_follow_the_formula(n_max, classes, ratio):
    counts = longtail_counts(n_max, classes, "step", ratio)
    assert counts == [n_max] * (classes // 2) + [int(n_max / ratio)] * (classes - classes // 2)


def test_ratio_one_is_balanced_and_bad_values_are_refused():
    assert longtail_counts(7, 5, "exp", 1) == [7] * 5
    assert longtail_counts(7, 5, "step", 1) == [7] * 5
    with pytest.raises(ConfigError, match="ratio must be >= 1"):
        longtail_counts(7, 5, "exp", 0.5)
    with pytest.raises(ConfigError, match="unknown long-tail profile"):
        longtail_counts(7, 5, "linear", 10)


def reference_selection(labels, counts, seed):
    """The protocol as the LDAM-DRW code writes it, with numpy's global RNG."""
    np.random.seed(seed)
    picks = []
    for c, n in enumerate(counts):
        idx = np.where(labels == c)[0]
        np.random.shuffle(idx)
        picks.extend(idx[:n])
    return np.array(picks, dtype=np.int64)


@pytest.fixture
def balanced_labels():
    return np.random.RandomState(123).permutation(np.repeat(np.arange(10), 200))


@pytest.mark.parametrize("profile, ratio", [("exp", 100), ("exp", 10), ("step", 10)])
@pytest.mark.parametrize("seed", [0, 7])
def test_selection_order_matches_the_reference_code(balanced_labels, profile, ratio, seed):
    split = select_longtail(balanced_labels, 10, profile=profile, ratio=ratio, seed=seed)
    np.testing.assert_array_equal(split.indices, reference_selection(balanced_labels, split.counts, seed))
    assert np.bincount(balanced_labels[split.indices], minlength=10).tolist() == list(split.counts)


def test_same_seed_same_indices_other_seed_different(balanced_labels):
    a = select_longtail(balanced_labels, 10, seed=0)
    b = select_longtail(balanced_labels, 10, seed=0)
    c = select_longtail(balanced_labels, 10, seed=1)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.indices_sha256() == b.indices_sha256() != c.indices_sha256()
    assert not np.array_equal(a.indices, c.indices)
    assert a.counts == c.counts


def test_selection_leaves_numpys_global_rng_alone(balanced_labels):
    np.random.seed(42)
    expected = np.random.rand()
    np.random.seed(42)
    select_longtail(balanced_labels, 10, seed=3)
    assert np.random.rand() == expected


def test_indices_hash_is_sha256_of_little_endian_int64(balanced_labels):
    split = select_longtail(balanced_labels, 10, seed=0)
    raw = b"".join(int(i).to_bytes(8, "little", signed=True) for i in split.indices)
    assert split.indices_sha256() == hashlib.sha256(raw).hexdigest()


def test_too_few_images_for_the_profile_is_a_clear_error():
    labels = np.repeat(np.arange(3), [10, 10, 4])
    with pytest.raises(DataError, match="class 2 has 4 training images"):
        select_longtail(labels, 3, ratio=1, n_max=10)


def test_data_command_prints_counts_and_hash(capsys):
    assert main(["data", "--dataset", "digits", "--ratio", "10", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    from tailsam.data import load_digits

    labels = load_digits().y_train
    counts = longtail_counts(120, 10, "exp", 10)
    expected = reference_selection(labels, counts, 0)
    assert summary["counts"] == counts and summary["n_train"] == sum(counts)
    assert summary["indices_sha256"] == hashlib.sha256(expected.astype("<i8").tobytes()).hexdigest()


def test_data_command_rejects_ratio_below_one(capsys):
    assert main(["data", "--dataset", "digits", "--ratio", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ratio must be >= 1" in err


def test_glmc_choice_without_replacement_picks_the_ldam_protocol_subset_of_its_seed():
    labels = np.repeat(np.arange(4), 50)[np.random.RandomState(5).permutation(200)]
    split = select_longtail(labels, 4, ratio=10, seed=3407)
    # GLMC's code, by hand: np.random.seed(3407); per class in label order, choice(n_available, n_c, replace=False).
    rng = np.random.RandomState(3407)
    glmc = [np.flatnonzero(labels == c)[rng.choice(50, n, replace=False)] for c, n in enumerate(split.counts)]
    assert split.counts == (50, 23, 10, 5)
    assert split.indices.tolist() == np.concatenate(glmc).tolist()


def test_first_n_keeps_each_classes_first_images_in_file_order(balanced_labels):
    split = select_longtail(balanced_labels, 10, ratio=10, seed=5, shuffle=False, n_max=50)
    expected = np.concatenate([np.flatnonzero(balanced_labels == c)[:n] for c, n in enumerate(split.counts)])
    np.testing.assert_array_equal(split.indices, expected)


def test_a_selection_of_blank_images_is_refused_with_the_seed_that_has_pixels(tmp_path):
    from tailsam.config import apply_overrides
    from tailsam.data import build_data
    from tailsam.recipes import get_recipe

    rng = np.random.RandomState(0)
    labels = np.repeat(np.arange(10), 20)
    x_train = rng.randint(1, 256, (200, 32, 32, 3)).astype(np.uint8)
    keep = select_longtail(labels, 10, ratio=10, seed=0).indices
    x_train[np.setdiff1d(np.arange(200), keep)] = 0   # as ../shared/data: pixels for data seed 0 only
    np.savez(tmp_path / "cifar10.npz", x_train=x_train, y_train=labels,
             x_test=rng.randint(0, 256, (20, 32, 32, 3)).astype(np.uint8), y_test=np.repeat(np.arange(10), 2))
    config = apply_overrides(get_recipe("cifar10-ce"), [f"data.root={tmp_path}", "data.ratio=10"])
    assert build_data(config, torch.device("cpu")).counts[0] == 20
    for other in (["data.seed=1"], ["data.protocol=first-n"]):
        with pytest.raises(DataError, match=r"selected cifar10 training images are blank .* data.seed=0"):
            build_data(apply_overrides(config, other), torch.device("cpu"))
