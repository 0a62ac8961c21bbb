"""Fine-tuning methods: one module each, registered here explicitly by name.

A method turns a loaded base model into the model to train (`apply`), writes what training changed
(`save`: safetensors + a JSON config) and rebuilds the trained model on top of a base (`load`). PEFT
methods go through `peft`, so their output directories load with `peft.PeftModel.from_pretrained`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from torch import nn

from tuneforge.config import MethodSettings, did_you_mean, explain_validation
from tuneforge.errors import ConfigError
from tuneforge.methods import adapter, freeze, full, ia3, lora, prefix, prompt, ptuning, qlora


class Method(Protocol):
    name: str
    config_cls: type[BaseModel]
    uses_prompt_tokens: bool
    """True for methods with virtual tokens (prefix, prompt, ptuning): the training loop must call the
    whole model's forward, not the backbone, and prompt/ptuning logits carry the virtual positions first."""

    def apply(self, model: nn.Module, cfg: Any) -> nn.Module:
        """Return the model to train (maybe a PeftModel) with exactly the method's parameters trainable."""

    def save(self, model: nn.Module, out_dir: Path) -> None:
        """Write what training changed to `out_dir`: safetensors weights + a JSON config."""

    def load(self, base_model: nn.Module, path: Path) -> nn.Module:
        """Rebuild the trained model from a directory written by `save`, on top of `base_model`, for
        inference: in eval mode, nothing trainable."""


METHODS: dict[str, Method] = {}


def register(method: Method) -> None:
    """Add a method under its name; a second method with the same name is a bug, not an override."""
    if method.name in METHODS:
        raise ValueError(f"a method named '{method.name}' is already registered")
    # The `name` field's default is what a YAML `method: {name: ...}` selects; they must agree.
    if method.config_cls.model_fields["name"].default != method.name:
        raise ValueError(f"method '{method.name}': {method.config_cls.__name__}.name must default to it")
    METHODS[method.name] = method


for _method in (full.METHOD, freeze.METHOD, lora.METHOD, qlora.METHOD, adapter.METHOD, prefix.METHOD,
                prompt.METHOD, ptuning.METHOD, ia3.METHOD):
    register(_method)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}'; {did_you_mean(name, METHODS, 'methods')}")
    return METHODS[name]


def method_config(raw: dict[str, Any]) -> MethodSettings:
    """Validate `{"name": "lora", "r": 8, ...}` with the named method's own settings class."""
    if not isinstance(raw, dict):
        raise ConfigError(f"'method': expected a mapping like {{name: lora, r: 16}}, got {raw!r}")
    raw = {"name": "lora", **raw}
    cls = get_method(str(raw["name"])).config_cls
    try:
        return cls.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(explain_validation(e, cls, "method", f" for method '{raw['name']}'")) from None


@dataclass(frozen=True)
class ParamReport:
    trainable: int
    total: int

    @property
    def percentage(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"trainable params: {self.trainable:,} / {self.total:,} ({self.percentage:.4f}%)"


def parameter_report(model: nn.Module) -> ParamReport:
    """Trainable and total parameters, counting shared (tied) tensors once."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        if n == 0 and hasattr(param, "ds_numel"):  # DeepSpeed ZeRO-3 keeps only a placeholder locally
            n = param.ds_numel
        if param.__class__.__name__ == "Params4bit":  # bitsandbytes packs two 4-bit values per byte
            n *= 2 * param.element_size()
        total += n
        trainable += n if param.requires_grad else 0
    return ParamReport(trainable, total)


__all__ = ["METHODS", "Method", "MethodSettings", "ParamReport", "get_method", "method_config",
           "parameter_report", "register"]
