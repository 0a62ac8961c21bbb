"""Fine-tuning methods: one module each, registered here explicitly by name.

A method turns a loaded base model into the model to train (`apply`), writes what training changed
(`save`: safetensors + a JSON config) and rebuilds the trained model on top of a base (`load`). It is
also the one place that knows its artefact: which directories it wrote (`recognises`; `artefact`
resolves a directory to its method), its peft type, whether it merges into the base, whether it is a
whole model, whether several share one base in the server and how DPO gets its reference. Code after
training asks the method object, never compares method names. PEFT methods go through `peft` (`_peft`),
so their output directories load with `peft.PeftModel.from_pretrained`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ValidationError
from torch import nn

from tuneforge.errors import ConfigError
from tuneforge.methods import adapter, freeze, full, ia3, lora, prefix, prompt, ptuning, qlora
from tuneforge.settings import MethodSettings, did_you_mean, explain_validation

if TYPE_CHECKING:
    from tuneforge.config import Config


class Method(Protocol):
    name: str
    config_cls: type[BaseModel]
    uses_prompt_tokens: bool
    """True for methods with virtual tokens (prefix, prompt, ptuning): the training loop must call the
    whole model's forward, not the backbone, and prompt/ptuning logits carry the virtual positions first."""
    peft_type: str | None
    """peft's type of the adapter directory it writes (`LORA`, `IA3`, ...); None for a format of its own."""
    writes_whole_model: bool
    """Its artefact is a complete HF model directory; the DPO reference is then a frozen copy of the base."""
    mergeable: bool
    """`merge` gives one plain HF model (export --merge, GGUF); a whole model counts as merged already."""
    shares_base: bool
    """Several of its adapters load side by side into one base in the server (weights inside the base's
    modules, switched per batch through peft), instead of each taking a copy of the base."""

    def check(self, cfg: Config) -> None:
        """Refuse a run configuration this method cannot train (beyond its own settings)."""

    def apply(self, model: nn.Module, cfg: Any) -> nn.Module:
        """Return the model to train (maybe a PeftModel) with exactly the method's parameters trainable."""

    def save(self, model: nn.Module, out_dir: Path) -> None:
        """Write what training changed to `out_dir`: safetensors weights + a JSON config."""

    def recognises(self, path: Path) -> bool:
        """Whether `path` is a directory this method wrote and `load` reads (exactly one method says yes)."""

    def load(self, base_model: nn.Module, path: Path) -> nn.Module:
        """Rebuild the trained model from a directory written by `save`, on top of `base_model`, for
        inference: in eval mode, nothing trainable."""

    def merge(self, model: nn.Module) -> nn.Module:
        """The loaded trained model as one plain model, its changes folded into the base weights (only
        asked of a mergeable method); refuses (ValueError) weights that come out NaN."""

    def adapters_off(self, model: nn.Module) -> Callable[[], AbstractContextManager] | None:
        """A context in which the trained `model` computes as its base, with no second copy in memory (the
        DPO reference); None where the method changes the base's own weights (`writes_whole_model`)."""

    def mixes_rows(self, path: Path) -> bool:
        """Whether rows of this shared-base adapter and of others of its kind (and of the base) may
        decode in one batch (peft's per-row `adapter_names`), rather than a batch per adapter."""


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
