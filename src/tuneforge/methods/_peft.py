"""What every PEFT-backed method does the same way: wrap, save and load through peft itself."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torch import nn

from tuneforge.errors import ConfigError


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


def load(base_model: nn.Module, path: Path, peft_type: str) -> nn.Module:
    """Load a saved adapter onto `base_model` (for inference), after checking it is the expected kind."""
    from peft import PeftModel

    config_file = Path(path) / "adapter_config.json"
    if not config_file.is_file():
        raise ConfigError(f"{path}: not a PEFT adapter directory (no adapter_config.json)")
    found = json.loads(config_file.read_text(encoding="utf-8")).get("peft_type")
    if found != peft_type:
        raise ConfigError(f"{path}: holds a {found} adapter, not {peft_type}")
    # peft leaves prompt-learning embeddings trainable even when loading for inference.
    with peft_quiet():
        return PeftModel.from_pretrained(base_model, str(path)).requires_grad_(False)
