"""What every PEFT-backed method does the same way: wrap, save and load through peft itself, and the
small base they share (`PeftMethod`): the artefact is peft's adapter directory, told apart by its
`peft_type`."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from tuneforge.errors import ConfigError, TuneforgeError

CONFIG_FILE = "adapter_config.json"


# Deprecation warnings that peft's own code triggers in transformers 5.x (peft 0.21 reads
# `is_gradient_checkpointing` whenever it wraps a model, and hands prefix-tuning keys and values to the
# base model as `past_key_values`): nothing a user can act on, so they are dropped around peft's calls only.
PEFT_OWN_DEPRECATIONS = "`(is_gradient_checkpointing|past_key_values)` is deprecated"


@contextmanager
def peft_quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_OWN_DEPRECATIONS, category=FutureWarning)
        yield


def wrap(model: nn.Module, peft_config, method: str) -> nn.Module:
    """`get_peft_model`, with peft's complaints about the settings (e.g. a target module the model
    lacks) turned into a ConfigError that says which method they belong to."""
    from peft import get_peft_model

    try:
        with peft_quiet():
            return get_peft_model(model, peft_config)
    except ValueError as e:
        raise ConfigError(f"method '{method}': {e}") from None


def save(model: nn.Module, out_dir: Path) -> None:
    # peft writes adapter_model.safetensors + adapter_config.json: the layout its own loader, vLLM and
    # other tools read unchanged.
    model.save_pretrained(str(out_dir), safe_serialization=True)


def adapter_config(path: str | Path) -> dict[str, Any] | None:
    """The `adapter_config.json` of a peft adapter directory; None where there is none."""
    config_file = Path(path) / CONFIG_FILE
    if not config_file.is_file():
        return None
    return json.loads(config_file.read_text(encoding="utf-8"))


def load(base_model: nn.Module, path: Path, peft_type: str) -> nn.Module:
    """Load a saved adapter onto `base_model` (for inference), after checking it is the expected kind."""
    from peft import PeftModel

    config = adapter_config(path)
    if config is None:
        raise ConfigError(f"{path}: not a PEFT adapter directory (no adapter_config.json)")
    found = config.get("peft_type")
    if found != peft_type:
        raise ConfigError(f"{path}: holds a {found} adapter, not {peft_type}")
    # peft leaves prompt-learning embeddings trainable even when loading for inference.
    with peft_quiet():
        return PeftModel.from_pretrained(base_model, str(path)).requires_grad_(False)


class PeftMethod:
    """The artefact side of a peft-backed method: peft's adapter directory of `peft_type`. A method
    subclasses it for `save`, `load` and the rest, and writes its own `apply`."""

    name: str
    peft_type: str
    uses_prompt_tokens = False
    writes_whole_model = False
    mergeable = False
    shares_base = False

    def check(self, cfg) -> None:
        pass

    def save(self, model: nn.Module, out_dir: Path) -> None:
        save(model, out_dir)

    def recognises(self, path: Path) -> bool:
        config = adapter_config(path)
        return config is not None and config.get("peft_type") == self.peft_type

    def load(self, base_model: nn.Module, path: Path) -> nn.Module:
        return load(base_model, path, self.peft_type)

    def merge(self, model: nn.Module) -> nn.Module:
        if not self.mergeable:
            raise TuneforgeError(f"a {self.name} adapter cannot be merged into the base weights")
        # peft's safe merge refuses (ValueError) weights that come out NaN.
        return model.merge_and_unload(safe_merge=True)

    def adapters_off(self, model: nn.Module):
        return model.disable_adapter

    def mixes_rows(self, path: Path) -> bool:
        return False
