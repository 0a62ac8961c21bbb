import pytest
import torch
from torch import nn

from tuneforge.methods import get_method
from tuneforge.methods.lora import LoraSettings
from tuneforge.native.fast_dropout import FastDropout, keep_mask, use_fast_dropout
from tuneforge.native.fused_lora import use_fused_lora


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5])
def test_keep_rate_and_unbiased_scale(p):
    torch.manual_seed(0)
    keep = keep_mask(torch.Size([2_000_000]), p)
    assert keep.float().mean().item() == pytest.approx(1 - p, abs=1e-3)
    x = torch.ones(2_000_000)
    out = FastDropout(p).train()(x)
    assert torch.all((out == 0) | torch.isclose(out, torch.tensor(1 / (1 - p)), rtol=1e-4))
    assert out.mean().item() == pytest.approx(1.0, abs=2e-3)


def test_lanes_are_independent_of_their_neighbours():
    # Four mask elements come from one 64-bit draw: adjacent elements must not be correlated.
    torch.manual_seed(1)
    keep = keep_mask(torch.Size([4_000_000]), 0.5).float()
    both = (keep[:-1] * keep[1:]).mean().item()
    assert both == pytest.approx(0.25, abs=2e-3)


def test_backward_applies_the_same_mask_and_scale():
    torch.manual_seed(2)
    x = torch.randn(64, 32, requires_grad=True)
    out = FastDropout(0.2).train()(x)
    out.backward(torch.ones_like(out))
    kept = out != 0
    assert torch.equal(x.grad != 0, kept)
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.8), rtol=1e-4)
    assert torch.allclose(out[kept], x.detach()[kept] / 0.8, rtol=1e-4)


def test_seeded_and_identity_in_eval():
    d = FastDropout(0.1).train()
    x = torch.randn(8, 16)
    torch.manual_seed(3)
    a = d(x)
    torch.manual_seed(3)
    assert torch.equal(a, d(x))
    assert d.eval()(x) is x


def test_lora_uses_it_and_saves_as_peft_does(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = get_method("lora")
    wrapped = lora.apply(model, LoraSettings(r=4, dropout=0.1))
    use_fast_dropout(wrapped)  # with use_fused_lora, what training's speed_up does to LoRA layers
    use_fused_lora(wrapped)
    dropouts = [m for m in wrapped.modules() if isinstance(m, FastDropout)]
    assert dropouts and not any(type(m) is nn.Dropout for m in wrapped.modules())
    lora.save(wrapped, tmp_path)
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(tmp_path))
    ids = torch.tensor([[1, 2, 3, 4]])
    wrapped.eval()
    with torch.no_grad():
        assert torch.allclose(wrapped(input_ids=ids).logits, reloaded(input_ids=ids).logits)


def test_probabilities_that_round_to_one_are_refused():
    assert FastDropout(0.9999).p == 0.9999
    with pytest.raises(ValueError, match=r"at most 1 - 1/65536"):
        FastDropout(0.999995)
