"""train.precision=auto: resolved from the CPU's flags (given here, not read from this machine), fixed at creation."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from tailsam.config import apply_overrides
from tailsam.errors import UserError
from tailsam.losses import build_loss
from tailsam.models import MODELS, build_model
from tailsam.optim import SAM
from tailsam.recipes import get_recipe
from tailsam.train import RunInterrupted, train
from tailsam.run import precision as precision_module
from tailsam.run.precision import auto_precision, cpu_description, cpu_flags, resolve_auto, resolve_precision
from tailsam.methods import sam_step

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
# Flags lines as /proc/cpuinfo prints them (shortened).
SAPPHIRE_RAPIDS = "fpu sse2 avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8"
ZEN4 = "fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni"
SKYLAKE_X = "fpu sse2 avx2 avx512f avx512bw avx512dq avx512vl"   # AVX-512, but bf16 only emulated
HASWELL = "fpu sse2 avx avx2 fma"


@pytest.mark.parametrize("flags, expected", [(SAPPHIRE_RAPIDS, "bf16"), (ZEN4, "bf16"), (SKYLAKE_X, "fp32"),
                                             (HASWELL, "fp32"), ("", "fp32")],
                         ids=["amx", "avx512_bf16", "avx512-without-bf16", "avx2", "no-flags"])
def test_auto_on_the_cpu_is_bf16_exactly_when_the_cpu_has_bf16_units(flags, expected):
    for model in ("resnet32", "resnet8", "resnet110"):
        assert auto_precision(CPU, model, frozenset(flags.split())) == expected
        assert resolve_auto("auto", CPU, model, frozenset(flags.split())) == expected


def test_auto_keeps_fp32_for_models_not_measured_in_bf16_on_the_cpu():
    flags = frozenset(SAPPHIRE_RAPIDS.split())
    assert [entry.name for entry in MODELS if entry.info.cpu_bf16] == [
        "resnet110", "resnet20", "resnet32", "resnet44", "resnet56", "resnet8"]
    for model in ("resnet50", "resnext50_32x4d", "timm:convnext_tiny", "not-registered"):
        assert auto_precision(CPU, model, flags) == "fp32"


def test_auto_on_cuda_is_fp32_and_explicit_precisions_always_win():
    assert auto_precision(CUDA, "resnet32", frozenset(SAPPHIRE_RAPIDS.split())) == "fp32"
    for name in ("fp32", "bf16", "fp16"):
        for flags in (SAPPHIRE_RAPIDS, HASWELL):
            assert resolve_auto(name, CPU, "resnet32", frozenset(flags.split())) == name
            assert resolve_auto(name, CPU, "resnet50", frozenset(flags.split())) == name
    assert resolve_precision("bf16", CPU).dtype is torch.bfloat16 and resolve_precision("fp32", CPU).dtype is None
    with pytest.raises(ValueError, match="resolve"):
        resolve_precision("auto", CPU)


def test_flags_and_model_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    block = f"processor\t: {{}}\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\nflags\t\t: {ZEN4}\n\n"
    cpuinfo.write_text(block.format(0) + block.format(1))
    assert cpu_flags(cpuinfo) == frozenset(ZEN4.split())
    assert cpu_description(cpuinfo) == {"model": "AMD EPYC 9R14", "bf16_flags": ["avx512_bf16"]}
    assert cpu_flags(tmp_path / "absent") == frozenset()   # not Linux: no flags, so auto is fp32


TINY = ["train.epochs=2", "train.eval_every=1", "loss.drw_start=1", "optim.lr_args.decay_epochs=1,2",
        "data.ratio=20", "model.name=resnet8"]


def test_auto_is_fixed_when_the_run_is_created_and_kept_on_resume_elsewhere(tmp_path, monkeypatch):
    """Created on a CPU with bf16 units, resumed on one without: the run stays bf16, step for step."""
    config = apply_overrides(get_recipe("digits-ldam-drw-sam"), TINY)        # train.precision=auto
    assert config.train.precision == "auto"
    monkeypatch.setattr(precision_module, "cpu_flags", lambda *_: frozenset(ZEN4.split()))
    with pytest.raises(RunInterrupted):
        train(config, tmp_path / "run", verbose=False,
              on_step=lambda e, s: signal.raise_signal(signal.SIGTERM) if (e, s) == (1, 2) else None)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["precision"] == "bf16"
    monkeypatch.setattr(precision_module, "cpu_flags", lambda *_: frozenset(HASWELL.split()))
    with pytest.raises(UserError, match="train.precision"):   # an explicit other precision is another run
        train(apply_overrides(config, ["train.precision=fp32"]), tmp_path / "run", verbose=False)
    final = train(config, tmp_path / "run", verbose=False)
    assert final["precision"] == "bf16"
    assert json.loads((tmp_path / "run" / "env.json").read_text())["precision"] == "bf16"

    explicit = train(apply_overrides(config, ["train.precision=bf16"]), tmp_path / "bf16", verbose=False)
    resumed = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    straight = torch.load(tmp_path / "bf16" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(resumed[key], straight[key]) for key in straight)
    assert final["top1"] == explicit["top1"]
    fp32 = train(apply_overrides(config, ["train.precision=fp32"]), tmp_path / "fp32", verbose=False)
    assert fp32["precision"] == "fp32"
    fp32_weights = torch.load(tmp_path / "fp32" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert not all(torch.equal(fp32_weights[key], straight[key]) for key in straight)   # bf16 really ran


def test_bf16_sam_steps_stay_close_to_fp32():
    """Five LDAM SAM steps of a ResNet-8 under bf16 autocast move the weights as fp32 does, to bf16's precision.

    bf16 keeps 8 bits of mantissa; measured: 5% of the fp32 update after one step, 8% after five,
    cosine 0.996 (a SAM pass left in fp32 would give 0, a broken perturbation far more).
    """
    torch.manual_seed(0)
    images, labels = torch.randn(64, 3, 16, 16), torch.arange(64) % 4
    criterion = build_loss("ldam", [40, 12, 8, 4])
    start = build_model("resnet8", 4, head="normed").state_dict()
    moved = {}
    for name in ("fp32", "bf16"):
        model = build_model("resnet8", 4, head="normed")
        model.load_state_dict(start)
        optimizer = SAM(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=2e-4), rho=0.5)
        precision = resolve_precision(name, CPU)
        for _ in range(5):
            sam_step(model, criterion, optimizer, images, labels, autocast=precision.autocast, freeze_bn=False)
        moved[name] = torch.cat([(p.detach() - start[k]).flatten() for k, p in model.named_parameters()])
    error = (moved["bf16"] - moved["fp32"]).norm() / moved["fp32"].norm()
    assert 0 < error < 0.12, error
    assert torch.nn.functional.cosine_similarity(moved["bf16"], moved["fp32"], dim=0) > 0.99
