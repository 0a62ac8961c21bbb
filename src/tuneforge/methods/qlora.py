"""QLoRA (Dettmers et al. 2023): LoRA over a 4-bit NF4 base loaded through bitsandbytes (CUDA only).

The 4-bit loading itself is `tuneforge.models.load_model` with `model.quantization: 4bit`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.methods import _peft
from tuneforge.methods.lora import LoraSettings, peft_config


class QLoraSettings(LoraSettings):
    name: Literal["qlora"] = "qlora"


class QLora(_peft.PeftMethod):
    """Trains LoRA over a 4-bit base; what it writes is a plain LoRA adapter, which method `lora` reads
    back (serving, evaluation, export), so `recognises` leaves those directories to it."""

    name = "qlora"
    config_cls = QLoraSettings
    peft_type = "LORA"
    mergeable = True
    shares_base = True

    def check(self, cfg) -> None:
        if cfg.model.quantization != "4bit":
            raise ConfigError("method 'qlora' trains LoRA over a 4-bit base: set model.quantization: 4bit "
                              "(CUDA only), or use method 'lora'")

    def apply(self, model: nn.Module, cfg: QLoraSettings) -> nn.Module:
        if not getattr(model, "is_loaded_in_4bit", False):
            if not torch.cuda.is_available():
                raise TuneforgeError("method 'qlora' needs a CUDA GPU: its base model is loaded in 4-bit "
                                     "through bitsandbytes, which this machine cannot do. Use method 'lora' "
                                     "(same settings) on CPU.")
            raise ConfigError("method 'qlora' needs the base model loaded in 4-bit: "
                              "set model.quantization: 4bit")
        from peft import prepare_model_for_kbit_training

        # Freezes the base and upcasts norms / LM head to fp32 for stable training. Gradient
        # checkpointing stays the training loop's setting (use_reentrant=False needs no input hook).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        return _peft.wrap(model, peft_config(cfg), self.name)

    def recognises(self, path: Path) -> bool:
        return False


METHOD = QLora()
