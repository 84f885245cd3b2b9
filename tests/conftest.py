"""Shared fixtures: miniature datasets written in the official on-disk formats."""

import pytest

from cifar_fixture import MiniCifar, write_mini_cifar
from tailsam.data import CIFAR10, CIFAR100


@pytest.fixture(params=[CIFAR10, CIFAR100], ids=lambda s: s.name)
def mini_cifar(request, tmp_path) -> MiniCifar:
    return write_mini_cifar(tmp_path, request.param)


def pytest_configure(config):
    # The suite's models are tiny: one thread is as fast as two, and it keeps OpenMP
    # threads from spinning against each other when the machine is shared.
    import torch

    torch.set_num_threads(1)
