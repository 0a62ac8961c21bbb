import pytest
import torch

from tuneforge import native
from tuneforge.native import fused_rope
from tuneforge.native.fused_rope import apply_rotary_pos_emb, use_fused_rope

pytestmark = pytest.mark.skipif(native.library() is None, reason="no C compiler: the kernels are not built")


def eager(q, k, cos, sin):
    from transformers.models.llama.modeling_llama import rotate_half

    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def rotated_with_grads(fn, q_proj, k_proj, cos, sin, heads, kv_heads, head_major=False):
    """RoPE of projections viewed as heads, as attention does ((B, T, H*D) -> (B, H, T, D)), and the
    gradients of a loss that weighs every output element differently."""
    a, b = q_proj.clone().requires_grad_(), k_proj.clone().requires_grad_()
    (bs, t, _), d = a.shape, cos.shape[-1]
    q, k = a.view(bs, t, heads, d).transpose(1, 2), b.view(bs, t, kv_heads, d).transpose(1, 2)
    if head_major:
        q, k = q.contiguous(), k.contiguous()
    oq, ok = fn(q, k, cos, sin)
    g = torch.Generator().manual_seed(1)
    (oq * torch.randn(oq.shape, generator=g)).sum().add((ok * torch.randn(ok.shape, generator=g)).sum()).backward()
    return oq, ok, a.grad, b.grad


@pytest.mark.parametrize("cos_batch", [2, 1])  # one table per batch row (packed position ids), or shared
@pytest.mark.parametrize("head_major", [False, True])
@pytest.mark.parametrize("d", [10, 40])  # halves of 5 (the kernel's scalar tail) and 20 (8-float vectors and tail)
def test_rope_equals_eager_forward_and_backward_in_the_same_layouts(cos_batch, head_major, d):
    torch.manual_seed(0)
    bs, t, heads, kv_heads = 2, 13, 4, 2
    q_proj, k_proj = torch.randn(bs, t, heads * d), torch.randn(bs, t, kv_heads * d)
    cos, sin = torch.randn(cos_batch, t, d), torch.randn(cos_batch, t, d)
    ref = rotated_with_grads(eager, q_proj, k_proj, cos, sin, heads, kv_heads, head_major)
    ours = rotated_with_grads(apply_rotary_pos_emb, q_proj, k_proj, cos, sin, heads, kv_heads, head_major)
    assert type(ours[0].grad_fn).__name__ == "_RopeBackward"
    for a, b in zip(ours, ref):
        assert a.stride() == b.stride()
        assert torch.allclose(a, b, atol=1e-5)


def test_a_key_without_gradient_and_other_dtypes():
    q, k = torch.randn(1, 2, 5, 8, requires_grad=True), torch.randn(1, 1, 5, 8)
    cos, sin = torch.randn(1, 5, 8), torch.randn(1, 5, 8)
    oq, ok = apply_rotary_pos_emb(q, k, cos, sin)
    oq.sum().backward()  # the key's output reaches no loss
    assert torch.allclose(ok, eager(q, k, cos, sin)[1], atol=1e-6) and q.grad is not None
    half = [t.to(torch.bfloat16) for t in (q.detach(), k, cos, sin)]
    assert all(torch.equal(a, b) for a, b in zip(apply_rotary_pos_emb(*half), eager(*half)))


def test_a_llama_model_routes_its_rope_through_the_kernel_with_the_same_logits_and_gradients(monkeypatch,
                                                                                          eager_and_fused):
    pytest.importorskip("kernels", reason="transformers gives attention modules their own RoPE only with `kernels`")
    calls = []
    apply = fused_rope._Rope.apply
    monkeypatch.setattr(fused_rope._Rope, "apply", lambda *a: calls.append(1) or apply(*a))
    ids = torch.randint(0, 512, (2, 24), generator=torch.Generator().manual_seed(0))
    positions = torch.cat([torch.arange(10), torch.arange(14)]).repeat(2, 1)  # packed rows: 2 samples each
    _, fused = eager_and_fused(use_fused_rope, input_ids=ids, position_ids=positions)
    assert fused == 2
    assert len(calls) == 2 * 2  # per layer, in each of the fused model's two forward passes only


def test_the_routes_outlast_train_and_eval_of_a_loaded_model(tiny_model_dir, monkeypatch):
    """Models from `from_pretrained` have transformers' kernel hub on, and each train() / eval() used to
    reset their norms' and RoPE's forwards."""
    pytest.importorskip("kernels", reason="transformers gives attention modules their own RoPE only with `kernels`")
    from transformers import AutoModelForCausalLM

    from tuneforge.native import fused_norm, speed_up

    calls = []
    for cls in (fused_rope._Rope, fused_norm._RMSNorm):
        monkeypatch.setattr(cls, "apply", lambda *a, _apply=cls.apply, _name=cls.__name__: calls.append(_name)
                            or _apply(*a))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    layers = model.config.num_hidden_layers
    assert model.use_kernels  # transformers' default where `kernels` is installed
    ups = speed_up(model)
    assert (ups.rms_norms, ups.ropes) == (2 * layers + 1, layers)
    model.train()
    model(input_ids=torch.tensor([[1, 5, 9, 3]]))
    model.eval()
    model(input_ids=torch.tensor([[1, 5, 9, 3]]))
    assert calls.count("_Rope") == 2 * layers and calls.count("_RMSNorm") == 2 * (2 * layers + 1)
