"""CPU speed-ups for training, behind one call: `speed_up(model)`, made once by training after the
method is applied. Each part computes what the module it replaces computes (the same parameters, so
artefacts save, load and merge unchanged), and steps aside where it does not apply (other devices or
dtypes, cases it does not cover, no C compiler):

- `fast_dropout`: LoRA's dropout masks drawn from a seed, never stored (`FastDropout`);
- `fused_lora`: a peft LoRA linear layer as one autograd function, dropout inside its products;
- `onednn_mm`: float32 matrix products through oneDNN rather than MKL (2× on CPUs MKL does not tune
  for), in the LoRA layers, the loss's LM head and every other plain linear layer, where `mkl_dispatch`
  (which the CLI, training and serving call before their first product) could not put MKL on its fast
  kernels;
- `fused_mlp`: the SwiGLU of Llama-family MLPs in one pass each way;
- `fused_norm`: Llama-family RMSNorms in one pass each way, keeping one activation less;
- `fused_rope`: the rotary position embedding of Llama-family attention's q and k in one pass each way;
- `fused_attention`: causal attention over the samples of packed rows, forward and backward, in the C
  kernels (`lm_loss._segment_attention` calls it);
- `lora_kernels`: the Python side of the C kernels the LoRA parts use, `build` compiles and loads them all;
- `kernel_hub`: keeps the norm and RoPE routes through transformers' `train()` / `eval()`, which reset the
  forwards of the layers its kernel hub may replace.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tuneforge.native.build import library, ptr
from tuneforge.native.fast_dropout import use_fast_dropout
from tuneforge.native.fused_lora import use_fused_lora
from tuneforge.native.fused_mlp import use_fused_swiglu
from tuneforge.native.fused_norm import use_fused_rms_norm
from tuneforge.native.fused_rope import use_fused_rope
from tuneforge.native.onednn_mm import use_onednn_linear


@dataclass(frozen=True)
class SpeedUps:
    """What `speed_up` changed: modules swapped or rerouted, by kind."""

    dropouts: int
    lora_layers: int
    swiglu_mlps: int
    rms_norms: int
    ropes: int
    linears: int


def speed_up(model: nn.Module) -> SpeedUps:
    """Route `model`'s LoRA dropout, LoRA linear layers, SwiGLU MLPs, RMSNorms, RoPE and other linear
    layers through the fused CPU paths."""
    dropouts = use_fast_dropout(model)  # first: the fused LoRA layer reads FastDropout's seeded masks
    return SpeedUps(dropouts, use_fused_lora(model), use_fused_swiglu(model), use_fused_rms_norm(model),
                    use_fused_rope(model), use_onednn_linear(model))


__all__ = ["SpeedUps", "library", "ptr", "speed_up"]
