"""torch.compile of the update steps (train.compile).

On the CPU the steps are checked with the aot_eager backend, which traces
the model the way inductor does but runs eager kernels: the compiled model
must take exactly the eager steps, SAM's in-place moves of the weights
included. Inductor itself is checked on CUDA (skipped elsewhere); on this
CPU (torch 2.14) its kernels gave a gradient 1.5% off eager in the SAM step,
which is why train.compile refuses CPU runs.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F

from tailsam.config import apply_overrides
from tailsam.errors import ConfigError
from tailsam.models import build_model
from tailsam.optim import SAM
from tailsam.recipes import get_recipe
from tailsam.methods import sam_step, sgd_step
from tailsam.train import train

BACKENDS = [("cpu", "aot_eager", 0.0),
            pytest.param("cuda", "inductor", 1e-4, marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                          reason="inductor is checked on CUDA"))]


@pytest.mark.parametrize("use_sam", [False, True])
@pytest.mark.parametrize(("device", "backend", "tolerance"), BACKENDS)
def test_compiled_model_takes_the_eager_steps(use_sam, device, backend, tolerance):
    torch.manual_seed(0)
    eager = build_model("resnet8", 10, in_channels=1).to(device)
    twin = copy.deepcopy(eager)
    compiled = torch.compile(twin, backend=backend)
    optimizers = []
    for model in (eager, twin):
        sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
        optimizers.append(SAM(sgd, rho=0.2) if use_sam else sgd)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        images = torch.randn(64, 1, 8, 8, generator=generator).to(device)
        labels = torch.randint(0, 10, (64,), generator=generator).to(device)
        for net, optimizer in ((eager, optimizers[0]), (compiled, optimizers[1])):
            net.train()
            if use_sam:
                sam_step(net, F.cross_entropy, optimizer, images, labels, autocast=nullcontext, freeze_bn=False)
            else:
                sgd_step(net, F.cross_entropy, optimizer, images, labels, autocast=nullcontext)
    for (name, a), b in zip(eager.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=tolerance, atol=tolerance, msg=name)


def test_compile_is_refused_on_the_cpu(tmp_path):
    config = apply_overrides(get_recipe("digits-ce"), ["train.compile=default", "train.device=cpu"])
    with pytest.raises(ConfigError, match="train.compile"):
        train(config, tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()
