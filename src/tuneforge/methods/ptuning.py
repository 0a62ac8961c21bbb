"""P-tuning (Liu et al. 2021) through peft's PromptEncoder: virtual-token embeddings produced by a small
MLP or LSTM, prepended to every input."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from tuneforge.methods import _peft
from tuneforge.settings import MethodSettings


class PTuningSettings(MethodSettings):
    name: Literal["ptuning"] = "ptuning"
    num_virtual_tokens: int = Field(20, gt=0)
    """Number of virtual tokens prepended to every input."""
    encoder: Literal["mlp", "lstm"] = "mlp"
    """The prompt encoder: an MLP with two hidden layers, or a two-layer bidirectional LSTM and an MLP."""
    encoder_hidden_size: int = Field(128, gt=0)
    """Hidden width of the prompt encoder."""


class PTuning(_peft.PeftMethod):
    name = "ptuning"
    config_cls = PTuningSettings
    peft_type = "P_TUNING"
    uses_prompt_tokens = True

    def apply(self, model: nn.Module, cfg: PTuningSettings) -> nn.Module:
        from peft import PromptEncoderConfig

        config = PromptEncoderConfig(
            task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens,
            encoder_reparameterization_type=cfg.encoder.upper(), encoder_hidden_size=cfg.encoder_hidden_size)
        return _peft.wrap(model, config, self.name)


METHOD = PTuning()
