"""oneDNN's float32 products compute what torch's do, forward and backward, and step aside where they
do not apply."""

import pytest
import torch
from torch import nn

from tuneforge.native import onednn_mm
from tuneforge.native.build import switched_off

needs_onednn = pytest.mark.skipif(switched_off() or not torch.backends.mkldnn.is_available(),
                                  reason="oneDNN off (TUNEFORGE_NATIVE=0 or no mkldnn)")


@pytest.fixture(autouse=True)
def _onednn(onednn_on):
    """Every test here sees oneDNN's products where they can run."""


@pytest.fixture
def calls(monkeypatch):
    """How many products went to oneDNN."""
    seen = []
    real = onednn_mm._inner_product

    def counting(*args):
        seen.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(onednn_mm, "_inner_product", counting)
    return seen


@needs_onednn
@pytest.mark.parametrize("rows", [0, 1, 7, 64])
def test_linear_and_mm_equal_torch_for_rows_and_column_major_operands(rows, calls):
    g = torch.Generator().manual_seed(rows)
    x, w, b = torch.randn(rows, 24, generator=g), torch.randn(40, 24, generator=g), torch.randn(40, generator=g)
    torch.testing.assert_close(onednn_mm.linear(x, w, b), nn.functional.linear(x, w, b), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(onednn_mm.linear(x, w), x @ w.t(), rtol=1e-5, atol=1e-5)
    grad = torch.randn(rows, 40, generator=g)
    torch.testing.assert_close(onednn_mm.mm(grad, w), grad @ w, rtol=1e-5, atol=1e-5)  # w^T: column-major
    torch.testing.assert_close(onednn_mm.mm(grad.t(), x), grad.t() @ x, rtol=1e-5, atol=1e-5)
    assert len(calls) == (4 if rows else 3)  # a sum over no rows (k = 0) is torch's


@needs_onednn
def test_batched_inputs_and_odd_strides(calls):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(12, 8, generator=g)
    x3 = torch.randn(3, 5, 8, generator=g)
    torch.testing.assert_close(onednn_mm.linear(x3, w), x3 @ w.t(), rtol=1e-5, atol=1e-5)
    every_other = torch.randn(8, 32, generator=g)[:, ::2]  # neither rows nor columns contiguous: torch's product
    assert torch.equal(onednn_mm.mm(torch.randn(4, 8, generator=g).mul(0), every_other), torch.zeros(4, 16))
    assert len(calls) == 1


def test_other_dtypes_and_autograd_inputs_use_torch(calls):
    w = torch.randn(6, 4, dtype=torch.float64)
    x = torch.randn(3, 4, dtype=torch.float64)
    assert torch.equal(onednn_mm.linear(x, w), nn.functional.linear(x, w))
    leaf = torch.randn(3, 4, requires_grad=True)
    out = onednn_mm.linear(leaf, torch.randn(6, 4))
    assert out.grad_fn is not None  # never a product autograd cannot see
    assert not calls


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("train_weight", [True, False])
def test_routed_linear_layer_gives_torch_outputs_and_gradients(bias, train_weight, calls):
    torch.manual_seed(0)
    plain = nn.Linear(16, 10, bias=bias)
    routed = nn.Linear(16, 10, bias=bias)
    routed.load_state_dict(plain.state_dict())
    for layer in (plain, routed):
        layer.weight.requires_grad_(train_weight)
    assert onednn_mm.use_onednn_linear(routed) == 1
    x = torch.randn(2, 5, 16)
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    outs = [plain(xs[0]), routed(xs[1])]
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(outs[0])
    for out in outs:
        out.backward(grad)
    torch.testing.assert_close(xs[1].grad, xs[0].grad, rtol=1e-5, atol=1e-5)
    if train_weight:
        torch.testing.assert_close(routed.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-5)
    if bias:
        torch.testing.assert_close(routed.bias.grad, plain.bias.grad, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(routed(x), plain(x), rtol=1e-5, atol=1e-5)
    # forward, input and weight gradients, and the no-grad forward: all oneDNN where it is on
    assert len(calls) == (3 + train_weight if onednn_mm.enabled() else 0)


def test_only_plain_linear_layers_are_routed():
    class Custom(nn.Linear):
        pass

    model = nn.Sequential(nn.Linear(4, 4), Custom(4, 4), nn.ReLU(), nn.Linear(4, 2))
    assert onednn_mm.use_onednn_linear(model) == 2
    assert "forward" not in vars(model[1])


@pytest.mark.parametrize("off", ["env", "no_mkldnn"])
def test_off_switches_leave_every_product_to_torch(off, monkeypatch, calls):
    if off == "env":
        monkeypatch.setenv("TUNEFORGE_NATIVE", "0")
    else:
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    onednn_mm.enabled.cache_clear()
    try:
        assert not onednn_mm.enabled()
        x, w = torch.randn(4, 8), torch.randn(6, 8)
        assert torch.equal(onednn_mm.linear(x, w), nn.functional.linear(x, w))
        assert not calls
    finally:
        onednn_mm.enabled.cache_clear()


def test_autocast_keeps_torchs_cast(calls):
    layer = nn.Linear(8, 4)
    onednn_mm.use_onednn_linear(layer)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(torch.randn(3, 8))
    assert out.dtype == torch.bfloat16 and not calls
