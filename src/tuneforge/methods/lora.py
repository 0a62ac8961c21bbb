"""LoRA (Hu et al. 2021) through peft, with rsLoRA scaling and DoRA as options."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from torch import nn

from tuneforge.methods import _peft
from tuneforge.settings import MethodSettings


class LoraSettings(MethodSettings):
    name: Literal["lora"] = "lora"
    r: int = Field(8, gt=0)
    """Rank of the update matrices."""
    alpha: float = Field(16.0, gt=0)
    """Scale: the update is multiplied by alpha / r (alpha / sqrt(r) with rslora)."""
    dropout: float = Field(0.05, ge=0, lt=1)
    """Dropout on the LoRA branch input."""
    target_modules: str | list[str] = "all-linear"
    """`all-linear` (every linear layer but the LM head), a list of module names such as
    `[q_proj, v_proj]`, or one regular expression matched against full module names."""
    rslora: bool = False
    """Rank-stabilised scaling alpha / sqrt(r) (Kalajdzievski 2023): larger ranks keep learning."""
    dora: bool = False
    """Weight-decomposed LoRA (Liu et al. 2024): also trains a magnitude vector per layer; slower."""


def peft_config(cfg: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                      target_modules=cfg.target_modules, use_rslora=cfg.rslora, use_dora=cfg.dora)


class Lora(_peft.PeftMethod):
    name = "lora"
    config_cls = LoraSettings
    peft_type = "LORA"
    mergeable = True  # DoRA too: peft merges its magnitudes
    shares_base = True

    def apply(self, model: nn.Module, cfg: LoraSettings) -> nn.Module:
        return _peft.wrap(model, peft_config(cfg), self.name)

    def mixes_rows(self, path: Path) -> bool:
        # peft mixes plain LoRA adapters row by row in one batch, not DoRA ones.
        return not (_peft.adapter_config(path) or {}).get("use_dora")


METHOD = Lora()
