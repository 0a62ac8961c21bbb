"""P-tuning (Liu et al. 2021) through peft's PromptEncoder: virtual-token embeddings produced by a small
MLP or LSTM, prepended to every input."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from torch import nn

from tuneforge.config import MethodSettings
from tuneforge.methods import _peft


class PTuningSettings(MethodSettings):
    name: Literal["ptuning"] = "ptuning"
    num_virtual_tokens: int = Field(20, gt=0)
    """Number of virtual tokens prepended to every input."""
    encoder: Literal["mlp", "lstm"] = "mlp"
    """The prompt encoder: an MLP with two hidden layers, or a two-layer bidirectional LSTM and an MLP."""
    encoder_hidden_size: int = Field(128, gt=0)
    """Hidden width of the prompt encoder."""


class PTuning:
    name = "ptuning"
    config_cls = PTuningSettings
    uses_prompt_tokens = True

    def apply(self, model: nn.Module, cfg: PTuningSettings) -> nn.Module:
        from peft import PromptEncoderConfig

        config = PromptEncoderConfig(
            task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens,
            encoder_reparameterization_type=cfg.encoder.upper(), encoder_hidden_size=cfg.encoder_hidden_size)
        return _peft.wrap(model, config, self.name)

    def save(self, model: nn.Module, out_dir: Path) -> None:
        _peft.save(model, out_dir)

    def load(self, base_model: nn.Module, path: Path) -> nn.Module:
        return _peft.load(base_model, path, "P_TUNING")


METHOD = PTuning()
