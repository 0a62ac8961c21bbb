import pytest
import torch

from tuneforge import native
from tuneforge.models.tiny import tiny_llama
from tuneforge.native.fused_norm import use_fused_rms_norm

pytestmark = pytest.mark.skipif(native.library() is None, reason="no C compiler: the kernels are not built")


def norm_pair(width: int, dtype=torch.float32):
    """A Llama RMSNorm and a copy of it routed through the kernel, with the same random weight."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    eager = LlamaRMSNorm(width, eps=1e-5).to(dtype)
    with torch.no_grad():
        eager.weight.copy_(torch.randn(width))
    fused = LlamaRMSNorm(width, eps=1e-5).to(dtype)
    fused.load_state_dict(eager.state_dict())
    holder = torch.nn.Sequential(fused)
    assert use_fused_rms_norm(holder) == 1
    return eager, fused


def outputs_and_grads(norm, x, dy, weight_grad=True):
    norm.weight.requires_grad_(weight_grad)
    norm.weight.grad = None
    x = x.clone().requires_grad_()
    y = norm(x)
    y.backward(dy)
    return y, x.grad, norm.weight.grad


def close(a, b):
    return torch.allclose(a, b, rtol=1e-5, atol=1e-5 * float(b.detach().abs().max()))


@pytest.mark.parametrize("weight_grad", [True, False])  # full fine-tuning trains the weight, LoRA freezes it
@pytest.mark.parametrize("scale", [1.0, 1e-3, 300.0])
def test_rms_norm_equals_eager_forward_and_backward(scale, weight_grad):
    torch.manual_seed(0)
    # 3 x 45 rows: not a whole number of the kernel's 64-row blocks; 301 columns: not of its 8 lanes
    x, dy = torch.randn(3, 45, 301) * scale, torch.randn(3, 45, 301)
    eager, fused = norm_pair(301)
    (y0, dx0, dw0), (y1, dx1, dw1) = outputs_and_grads(eager, x, dy, weight_grad), outputs_and_grads(fused, x, dy,
                                                                                                       weight_grad)
    assert type(y1.grad_fn).__name__ == "_RMSNormBackward"
    assert close(y1, y0) and close(dx1, dx0)
    assert close(dw1, dw0) if weight_grad else dw1 is None and dw0 is None


def test_other_dtypes_take_the_modules_own_forward():
    eager, fused = norm_pair(16, torch.bfloat16)
    x = torch.randn(4, 16, dtype=torch.bfloat16)
    assert torch.equal(fused(x), eager(x))


def test_a_llama_model_gives_the_same_logits_and_gradients_and_keeps_less(eager_and_fused):
    ids = torch.randint(0, 512, (2, 24), generator=torch.Generator().manual_seed(0))
    kept_less, fused = eager_and_fused(use_fused_rms_norm, input_ids=ids)
    assert fused == 2 * 2 + 1  # two per layer and the final one
    hidden = tiny_llama().config.hidden_size
    assert kept_less == 5 * 2 * 24 * hidden * 4  # per norm the normalised (B, T, H) float32 activation


def test_norms_that_transformers_kernel_hub_routes_off_the_cpu_are_left_to_it():
    model = tiny_llama(layers=1).to("meta")  # any device but the CPU
    model._use_kernels = True  # as `from_pretrained` leaves it where `kernels` is installed
    assert use_fused_rms_norm(model) == 0 and model.use_kernels
    assert not any("forward" in m.__dict__ for m in model.modules())
