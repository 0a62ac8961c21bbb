"""What every PEFT-backed method does the same way: wrap, save and load through peft itself."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from tuneforge.errors import ConfigError


def wrap(model: nn.Module, peft_config, method: str) -> nn.Module:
    """`get_peft_model`, with peft's complaints about the settings (e.g. a target module the model
    lacks) turned into a ConfigError that says which method they belong to."""
    from peft import get_peft_model

    try:
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
    return PeftModel.from_pretrained(base_model, str(path)).requires_grad_(False)
