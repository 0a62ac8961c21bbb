"""Full fine-tuning: every parameter trains; the output is a complete HF model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch import nn

from tuneforge.settings import MethodSettings


class FullSettings(MethodSettings):
    name: Literal["full"] = "full"


def save_model(model: nn.Module, out_dir: Path) -> None:
    # safetensors is save_pretrained's only format in transformers 5 and its default since 4.35.
    model.save_pretrained(str(out_dir))


def is_model_dir(path: Path) -> bool:
    return (Path(path) / "config.json").is_file()


def load_model(base_model: nn.Module, path: Path) -> nn.Module:
    """The saved model itself; `base_model` only tells the class, dtype and device to load it with."""
    param = next(base_model.parameters())
    model = type(base_model).from_pretrained(str(path), dtype=param.dtype).to(param.device)
    return model.requires_grad_(False).eval()


class WholeModelMethod:
    """What the methods that train the model's own weights (full, freeze) share: their artefact is a
    complete model directory, already merged, loaded as is; DPO compares against a frozen copy."""

    uses_prompt_tokens = False
    peft_type = None
    writes_whole_model = True
    mergeable = True  # already one plain model
    shares_base = False

    def check(self, cfg) -> None:
        pass

    def save(self, model: nn.Module, out_dir: Path) -> None:
        save_model(model, out_dir)

    def load(self, base_model: nn.Module, path: Path) -> nn.Module:
        return load_model(base_model, path)

    def merge(self, model: nn.Module) -> nn.Module:
        return model

    def adapters_off(self, model: nn.Module) -> None:
        return None  # the base's own weights train: the DPO reference is a frozen copy made before `apply`

    def mixes_rows(self, path: Path) -> bool:
        return False


class Full(WholeModelMethod):
    name = "full"
    config_cls = FullSettings

    def apply(self, model: nn.Module, cfg: FullSettings) -> nn.Module:
        return model.requires_grad_(True)

    def recognises(self, path: Path) -> bool:
        return is_model_dir(path)


METHOD = Full()
