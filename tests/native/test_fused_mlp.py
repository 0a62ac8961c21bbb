import pytest
import torch
from torch import nn

from tuneforge import native
from tuneforge.models.tiny import tiny_llama
from tuneforge.native.fused_mlp import swiglu, use_fused_swiglu

pytestmark = pytest.mark.skipif(native.library() is None, reason="no C compiler: the kernels are not built")


def eager(g, u):
    return nn.functional.silu(g) * u


@pytest.mark.parametrize("scale", [1.0, 30.0])  # 30: sigmoids saturate at both ends
def test_swiglu_equals_eager_forward_and_backward(scale):
    torch.manual_seed(0)
    g, u, dh = torch.randn(37, 301) * scale, torch.randn(37, 301), torch.randn(37, 301)
    grads = []
    for fn in (eager, swiglu):
        a, b = g.clone().requires_grad_(), u.clone().requires_grad_()
        out = fn(a, b)
        out.backward(dh)
        grads.append((out.detach(), a.grad, b.grad))
    for ours, ref in zip(grads[1], grads[0]):
        assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_nan_and_inf_pass_through():
    g = torch.tensor([float("nan"), float("inf"), 100.0, -100.0, 0.0])
    out = swiglu(g, torch.ones(5))
    assert out[0].isnan() and out[1] == float("inf") and out[2] == 100.0
    assert abs(out[3].item()) < 1e-30 and out[4] == 0.0


def test_other_dtypes_take_torchs_path():
    g, u = torch.randn(4, 8, dtype=torch.bfloat16), torch.randn(4, 8, dtype=torch.bfloat16)
    assert torch.equal(swiglu(g, u), eager(g, u))


def test_a_llama_model_gives_the_same_logits_and_gradients_and_keeps_less(eager_and_fused):
    ids = torch.randint(0, 512, (2, 24), generator=torch.Generator().manual_seed(0))
    kept_less, fused = eager_and_fused(use_fused_swiglu, input_ids=ids)
    assert fused == 2
    intermediate = tiny_llama().config.intermediate_size
    assert kept_less == 2 * 2 * 24 * intermediate * 4  # per layer one (B, T, I) float32 silu(g) fewer


def test_only_silu_mlps_are_fused():
    model = tiny_llama(layers=2)
    model.config.hidden_act = "gelu"
    from transformers import LlamaForCausalLM

    gelu = LlamaForCausalLM(model.config)
    assert use_fused_swiglu(gelu) == 0
    assert use_fused_swiglu(tiny_llama(layers=3)) == 3
