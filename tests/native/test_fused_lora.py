from contextlib import contextmanager

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora.layer import Linear as LoraLinear
from torch import nn

from tuneforge.methods import get_method
from tuneforge.methods.lora import LoraSettings
from tuneforge.native import SpeedUps, speed_up
from tuneforge.native.fast_dropout import use_fast_dropout
from tuneforge.native.fused_lora import _LoraLinear, use_fused_lora


class TwoLayers(nn.Module):
    def __init__(self, bias: bool):
        super().__init__()
        self.up = nn.Linear(12, 20, bias=bias)
        self.down = nn.Linear(20, 12, bias=bias)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


def lora_pair(*, bias: bool = True, dropout: float = 0.2, r: int = 4, **config):
    """The same peft model twice: one with peft's forward, one fused."""
    torch.manual_seed(0)
    made = []
    for _ in range(2):
        torch.manual_seed(0)
        model = get_peft_model(TwoLayers(bias), LoraConfig(r=r, lora_alpha=8, lora_dropout=dropout,
                                                           target_modules=["up", "down"], **config))
        for name, p in model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero: make the LoRA branch count
                nn.init.normal_(p, std=0.3)
        use_fast_dropout(model)
        made.append(model)
    assert use_fused_lora(made[1]) == 2
    return made


def run(model, x, seed=7):
    torch.manual_seed(seed)
    x = x.clone().requires_grad_()
    out = model(x)
    out.square().sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return out.detach(), x.grad, grads


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
@pytest.mark.parametrize("r", [4, 8, 24])  # 8 and 24 run the compiled kernels (one and three vectors of 8)
def test_fused_matches_peft_forward_and_gradients(bias, dropout, r):
    plain, fused = lora_pair(bias=bias, dropout=dropout, r=r)
    x = torch.randn(3, 5, 12)
    out_p, gx_p, g_p = run(plain.train(), x)
    out_f, gx_f, g_f = run(fused.train(), x)
    assert torch.allclose(out_f, out_p, atol=1e-5)
    assert torch.allclose(gx_f, gx_p, atol=1e-5)
    assert g_p.keys() == g_f.keys() and len(g_p) == 4  # lora_A and lora_B of both layers, nothing else
    for name in g_p:
        assert torch.allclose(g_f[name], g_p[name], atol=1e-5), name


def test_dropout_is_drawn_per_call_and_off_in_eval():
    _, fused = lora_pair(dropout=0.5)
    x = torch.randn(4, 12)
    fused.train()
    with torch.no_grad():
        assert not torch.equal(fused(x), fused(x))
        fused.eval()
        assert torch.equal(fused(x), fused(x))
        with fused.disable_adapter():
            base = fused(x)
        assert not torch.allclose(fused(x), base)


@contextmanager
def fused_calls():
    """The input shapes `_LoraLinear` is applied to inside the block."""
    calls = []
    original = _LoraLinear.forward
    _LoraLinear.forward = staticmethod(lambda ctx, *args: calls.append(args[0].shape) or original(ctx, *args))
    try:
        yield calls
    finally:
        _LoraLinear.forward = staticmethod(original)


def test_the_fused_function_is_what_runs():
    _, fused = lora_pair()
    with fused_calls() as calls:
        fused(torch.randn(2, 12))
    assert calls == [torch.Size([2, 12]), torch.Size([2, 20])]


def test_other_cases_run_peft_forward_unchanged():
    # DoRA, disabled adapters, a merged layer: the fused path must step aside and give peft's result.
    for config, prepare in [({"use_dora": True}, lambda m: None),
                            ({}, lambda m: m.base_model.disable_adapter_layers()),
                            ({}, lambda m: m.merge_adapter())]:
        plain, fused = lora_pair(dropout=0.0, **config)
        prepare(plain), prepare(fused)
        x = torch.randn(3, 12)
        with torch.no_grad():
            assert torch.allclose(fused(x), plain(x), atol=1e-6), config


def test_zero3_partitioned_weights_run_peft_forward():
    # ZeRO-3 gathers weights in hooks around each module's own forward: the fused path would skip them.
    _, fused = lora_pair()
    layer = fused.base_model.model.up
    x = torch.randn(2, 12)
    with torch.no_grad():
        expected = layer.base_layer(x) + layer.lora_B["default"](layer.lora_A["default"](x)) * layer.scaling["default"]
    layer.base_layer.weight.ds_id = 0
    calls = []
    layer.base_layer.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        assert torch.allclose(layer.eval()(x), expected, atol=1e-6)
    assert calls == [1]


def test_autocast_to_another_dtype_runs_peft_forward():
    # Mixed precision (autocast) casts inside the forward pass only: the fused function steps aside.
    plain, fused = lora_pair()
    x = torch.randn(3, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_p, gx_p, g_p = run(plain.train(), x)
        out_f, gx_f, g_f = run(fused.train(), x)
    assert out_f.dtype == torch.bfloat16 and torch.equal(out_f, out_p) and torch.equal(gx_f, gx_p)


def test_bf16_weights_under_bf16_autocast_stay_fused():
    # GPU runs keep bf16 weights and still autocast to bf16: nothing to cast, so the fused path runs.
    plain, fused = (m.to(torch.bfloat16) for m in lora_pair())
    x = torch.randn(3, 12, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_p, gx_p, g_p = run(plain.train(), x)
        with fused_calls() as calls:
            out_f, gx_f, g_f = run(fused.train(), x)
    assert len(calls) == 2 and out_f.dtype == torch.bfloat16
    assert torch.allclose(out_f.float(), out_p.float(), rtol=2e-2, atol=2e-2)
    for name in g_p:
        assert torch.allclose(g_f[name].float(), g_p[name].float(), rtol=5e-2, atol=5e-2), name


def test_lora_method_trains_through_it_and_saves_peft_adapters(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    lora = get_method("lora")
    model = lora.apply(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraSettings(r=4, dropout=0.1))
    use_fast_dropout(model)  # with use_fused_lora, what training's speed_up does to LoRA layers
    use_fused_lora(model)
    layers = [m for m in model.modules() if type(m) is LoraLinear]
    assert layers and all("forward" in m.__dict__ for m in layers)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    lora.save(model, tmp_path)
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(tmp_path)).eval()
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.allclose(model.eval()(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=1e-6)


@pytest.mark.parametrize("r", [4, 8])
def test_activation_checkpointing_redraws_the_same_dropout_masks(tiny_model_dir, r):
    from transformers import AutoModelForCausalLM

    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = get_method("lora").apply(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                         LoraSettings(r=r, dropout=0.3))
        use_fast_dropout(model)  # with use_fused_lora, what training's speed_up does to LoRA layers
        use_fused_lora(model)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                nn.init.normal_(p, std=0.1)
        if checkpointing:
            from tuneforge.train.loop import enable_activation_checkpointing

            enable_activation_checkpointing(model)
            model.enable_input_require_grads()
        model.train()
        torch.manual_seed(1)
        model(input_ids=torch.tensor([[1, 5, 9, 3, 7, 2]]), labels=torch.tensor([[1, 5, 9, 3, 7, 2]])).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


def test_speed_up_reroutes_every_lora_dropout_layer_swiglu_norm_and_rope_once(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = get_method("lora").apply(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraSettings(r=8))
    layers = [m for m in model.modules() if type(m) is LoraLinear]
    n = model.config.num_hidden_layers
    linears = sum(type(m) is torch.nn.Linear for m in model.modules())  # the LoRA layers' bases, and others
    assert linears >= len(layers)
    assert speed_up(model) == SpeedUps(dropouts=len(layers), lora_layers=len(layers), swiglu_mlps=n,
                                       rms_norms=2 * n + 1, ropes=n, linears=linears)
    assert speed_up(model).dropouts == 0  # already swapped
