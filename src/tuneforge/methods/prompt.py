"""Prompt tuning (Lester et al. 2021) through peft: trained soft-prompt embeddings before the input."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from tuneforge.methods import _peft
from tuneforge.settings import MethodSettings


class PromptSettings(MethodSettings):
    name: Literal["prompt"] = "prompt"
    num_virtual_tokens: int = Field(20, gt=0)
    """Number of trained embedding vectors prepended to every input."""


class Prompt(_peft.PeftMethod):
    name = "prompt"
    config_cls = PromptSettings
    peft_type = "PROMPT_TUNING"
    uses_prompt_tokens = True

    def apply(self, model: nn.Module, cfg: PromptSettings) -> nn.Module:
        from peft import PromptTuningConfig

        config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens)
        return _peft.wrap(model, config, self.name)


METHOD = Prompt()
