"""Prefix tuning (Li & Liang 2021) through peft: trained key/value prefixes in every attention layer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from tuneforge.methods import _peft
from tuneforge.settings import MethodSettings


class PrefixSettings(MethodSettings):
    name: Literal["prefix"] = "prefix"
    num_virtual_tokens: int = Field(20, gt=0)
    """Length of the trained prefix, in key/value positions per layer."""
    projection: bool = False
    """Reparameterise the prefix through a two-layer MLP while training (the paper's stabiliser)."""
    projection_hidden_size: int = Field(512, gt=0)
    """Hidden width of that MLP; used only with projection."""


class Prefix(_peft.PeftMethod):
    name = "prefix"
    config_cls = PrefixSettings
    peft_type = "PREFIX_TUNING"
    uses_prompt_tokens = True

    def apply(self, model: nn.Module, cfg: PrefixSettings) -> nn.Module:
        from peft import PrefixTuningConfig

        config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens,
                                    prefix_projection=cfg.projection,
                                    encoder_hidden_size=cfg.projection_hidden_size)
        return _peft.wrap(model, config, self.name)


METHOD = Prefix()
