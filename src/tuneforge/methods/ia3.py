"""(IA)^3 (Liu et al. 2022) through peft: learned vectors that rescale keys, values and MLP activations."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator
from torch import nn

from tuneforge.methods import _peft
from tuneforge.settings import MethodSettings


class IA3Settings(MethodSettings):
    name: Literal["ia3"] = "ia3"
    target_modules: list[str] | None = None
    """Modules whose activations are rescaled; default: peft's choice for the architecture
    (for Llama: k_proj, v_proj, down_proj)."""
    feedforward_modules: list[str] | None = None
    """Which of target_modules are MLP layers (their input is rescaled, not their output); default:
    peft's choice for the architecture (for Llama: down_proj)."""

    @model_validator(mode="after")
    def _feedforward_within_targets(self) -> IA3Settings:
        if self.target_modules is not None and self.feedforward_modules is not None:
            extra = set(self.feedforward_modules) - set(self.target_modules)
            if extra:
                raise ValueError(f"feedforward_modules {sorted(extra)} are not in target_modules")
        return self


class IA3(_peft.PeftMethod):
    name = "ia3"
    config_cls = IA3Settings
    peft_type = "IA3"
    mergeable = True
    shares_base = True

    def apply(self, model: nn.Module, cfg: IA3Settings) -> nn.Module:
        from peft import IA3Config

        config = IA3Config(task_type="CAUSAL_LM", target_modules=cfg.target_modules,
                           feedforward_modules=cfg.feedforward_modules)
        return _peft.wrap(model, config, self.name)


METHOD = IA3()
