"""Models: CIFAR ResNet sizes and shapes, option-A shortcuts, init, heads, registry metadata."""

import pytest
import torch
from torch import nn

from tailsam.errors import ConfigError
from tailsam.models import HEADS, MODELS, CifarResNet, NormedLinear, build_head, build_model
from tailsam.models.resnet_cifar import BasicBlock, ZeroPadShortcut


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet32_has_0_46m_parameters():
    model = build_model("resnet32", num_classes=10)
    n = count_params(model)
    print(f"resnet32, 10 classes, linear head: {n} parameters")
    assert n == 464_154
    assert round(n / 1e6, 2) == 0.46
    # The cosine head drops the 10 biases; the option-A shortcuts add nothing.
    assert count_params(build_model("resnet32", 10, head="normed")) == n - 10


def test_resnet32_layout_is_three_stages_of_five_blocks():
    model = build_model("resnet32", 10)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 15
    assert [b.conv2.out_channels for b in blocks] == [16] * 5 + [32] * 5 + [64] * 5
    assert sum(isinstance(b.shortcut, ZeroPadShortcut) for b in blocks) == 2
    assert model.feature_dim == 64


@pytest.mark.parametrize("entry", list(MODELS), ids=lambda e: e.name)
def test_registry_metadata_matches_built_model(entry):
    with torch.device("meta"):   # shapes and counts only: no weights allocated or initialised (ResNet-50 is big)
        model = build_model(entry.name, num_classes=10, in_channels=entry.info.input_size[0])
        logits = model(torch.empty(2, *entry.info.input_size))
    assert count_params(model) == entry.info.params
    assert logits.shape == (2, 10)
    assert entry.info.input_size == ((3, 224, 224) if entry.name in ("resnet50", "resnext50_32x4d")
                                            else (3, 32, 32))
    assert entry.info.paper


@pytest.mark.parametrize("entry", list(MODELS), ids=lambda e: e.name)
@pytest.mark.parametrize("head", HEADS.names())
def test_every_model_and_head_runs_on_8x8_grey_images(entry, head):
    torch.manual_seed(0)
    model = build_model(entry.name, num_classes=7, head=head, in_channels=1)
    x = torch.randn(2, 1, 8, 8)
    out = model(x)   # training mode: GLMC's and PaCo's heads give their outputs as a named tuple
    outputs = out if isinstance(out, tuple) else (out,)
    assert getattr(out, "logits", out).shape == (2, 7) and all(torch.isfinite(t).all() for t in outputs)
    logits = model.eval()(x)   # evaluation: logits from every head
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()


@pytest.mark.parametrize("head", ["linear", "normed"])
def test_resnet32_output_shape_on_cifar_sized_input(head):
    torch.manual_seed(0)
    logits = build_model("resnet32", num_classes=10, head=head)(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    if head == "normed":
        assert logits.abs().max() <= 1 + 1e-6


def test_normed_head_gives_cosines_by_hand():
    head = NormedLinear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # columns are the classes
    logits = head(torch.tensor([[3.0, 4.0], [-1.0, 0.0]]))
    # cos([3, 4], [1, 0]) = 3/5, cos([3, 4], [0, 2]) = 4/5; [-1, 0] is opposite to class 0.
    torch.testing.assert_close(logits, torch.tensor([[0.6, 0.8], [-1.0, 0.0]]))


def test_normed_head_starts_with_unit_norm_class_columns():
    head = build_head("normed", 64, 10)
    assert head.weight.shape == (64, 10)
    torch.testing.assert_close(head.weight.norm(dim=0), torch.ones(10))


def test_zero_pad_shortcut_subsamples_and_pads_channels_on_both_sides():
    x = torch.arange(16 * 4 * 4, dtype=torch.float32).reshape(1, 16, 4, 4)
    out = ZeroPadShortcut(stride=2, extra_channels=16)(x)
    assert out.shape == (1, 32, 2, 2)
    assert (out[:, :8] == 0).all() and (out[:, 24:] == 0).all()
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2])


def test_conv_and_linear_weights_are_kaiming_normal():
    torch.manual_seed(0)
    model = build_model("resnet8", num_classes=10)
    conv = model.blocks[-1].conv2  # 64 x 64 x 3 x 3: enough weights for a tight estimate
    fan_in = 64 * 3 * 3
    assert conv.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.05)
    assert conv.weight.mean().item() == pytest.approx(0.0, abs=0.01)
    head_std = model.head.weight.std().item()
    assert head_std == pytest.approx((2 / 64) ** 0.5, rel=0.3)  # only 640 weights: loose


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_model("resnet8", num_classes=3, head="normed", in_channels=1)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="resnet33", num_classes=10), "unknown model 'resnet33'"),
        (dict(name="resnet32", num_classes=10, head="cosine"), "unknown head 'cosine'"),
        (dict(name="resnet32", num_classes=0), "num_classes"),
        (dict(name="resnet32", num_classes=10, in_channels=0), "in_channels"),
    ],
)
def test_build_model_reports_user_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_model(**kwargs)


def test_depth_must_be_6n_plus_2():
    with pytest.raises(ValueError, match="6n \\+ 2"):
        CifarResNet(depth=30, num_classes=10)
