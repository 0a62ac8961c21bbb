"""Bottleneck adapters (Houlsby et al. 2019), which peft lacks: a small down-projection -> activation ->
up-projection with a residual, after the attention block and after the MLP block of every decoder layer.

The up-projection starts at zero, so the adapted model computes exactly what the base computes until
training moves it. Adapters attach through forward hooks, leaving the base's modules and parameter
names untouched; they are saved on their own as safetensors + a JSON config and loaded back onto a base.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.methods._layers import decoder_layers
from tuneforge.settings import MethodSettings

# Not peft's adapter_config.json / adapter_model.safetensors: tools that read those must not mistake
# this directory for a PEFT adapter.
CONFIG_FILE = "bottleneck_adapter.json"
WEIGHTS_FILE = "bottleneck_adapter.safetensors"
FORMAT = "tuneforge-bottleneck-adapter/1"

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}
ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")
MLP_NAMES = ("mlp", "feed_forward", "ffn")


class AdapterSettings(MethodSettings):
    name: Literal["adapter"] = "adapter"
    bottleneck: int = Field(64, gt=0)
    """Width of each adapter: hidden size -> bottleneck -> hidden size."""
    activation: Literal["gelu", "relu", "silu", "tanh"] = "gelu"
    """Nonlinearity between the down- and the up-projection."""


class Bottleneck(nn.Module):
    def __init__(self, hidden_size: int, bottleneck: int, activation: str):
        super().__init__()
        self.activation = activation
        self.enabled = True
        self.down = nn.Linear(hidden_size, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        if not self.enabled:
            return x
        # The adapter keeps its own (float32) weights over a half-precision base, as peft does for LoRA;
        # the residual stream stays in the base's dtype.
        delta = self.up(self.act(self.down(x.to(self.down.weight.dtype))))
        return x + delta.to(x.dtype)


def _after(adapter: Bottleneck):
    def hook(module: nn.Module, args, output):
        if isinstance(output, tuple):  # attention returns (hidden states, attention weights, ...)
            return (adapter(output[0]), *output[1:])
        return adapter(output)

    return hook


def _child(layer: nn.Module, names: tuple[str, ...], what: str) -> nn.Module:
    for name in names:
        if isinstance(getattr(layer, name, None), nn.Module):
            return getattr(layer, name)
    children = ", ".join(name for name, _ in layer.named_children())
    raise TuneforgeError(f"method 'adapter': no {what} block in {type(layer).__name__} "
                         f"(children: {children})")


def adapters(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights by their names in `model`."""
    return {f"{prefix}.{name}": tensor
            for prefix, module in model.named_modules() if isinstance(module, Bottleneck)
            for name, tensor in module.state_dict().items()}


@contextmanager
def disabled(model: nn.Module) -> Iterator[nn.Module]:
    """The base model's behaviour, without a second copy in memory (the DPO reference), like peft's
    `disable_adapter()`."""
    modules = [m for m in model.modules() if isinstance(m, Bottleneck)]
    for module in modules:
        module.enabled = False
    try:
        yield model
    finally:
        for module in modules:
            module.enabled = True


class Adapter:
    name = "adapter"
    config_cls = AdapterSettings
    uses_prompt_tokens = False
    peft_type = None
    writes_whole_model = False
    mergeable = False
    shares_base = False  # hooks into the modules of a base of its own

    def check(self, cfg) -> None:
        pass

    def apply(self, model: nn.Module, cfg: AdapterSettings) -> nn.Module:
        if any(isinstance(m, Bottleneck) for m in model.modules()):
            raise TuneforgeError("method 'adapter': this model already has bottleneck adapters")
        model.requires_grad_(False)
        hidden_size = model.get_input_embeddings().embedding_dim
        device = next(model.parameters()).device
        for layer in decoder_layers(model):
            for attr, names, what in (("attn_adapter", ATTENTION_NAMES, "attention"),
                                      ("mlp_adapter", MLP_NAMES, "MLP")):
                block = _child(layer, names, what)
                adapter = Bottleneck(hidden_size, cfg.bottleneck, cfg.activation).to(device)
                layer.add_module(attr, adapter)  # registered on the layer: found by .parameters(), .to(), DDP
                block.register_forward_hook(_after(adapter))
        return model

    def save(self, model: nn.Module, out_dir: Path) -> None:
        from safetensors.torch import save_file

        weights = {name: t.detach().contiguous().cpu() for name, t in adapters(model).items()}
        if not weights:
            raise TuneforgeError("method 'adapter': the model has no bottleneck adapters to save")
        first = next(m for m in model.modules() if isinstance(m, Bottleneck))
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file(weights, str(out_dir / WEIGHTS_FILE), metadata={"format": FORMAT})
        config = {"format": FORMAT, "bottleneck": first.down.out_features, "activation": first.activation,
                  "hidden_size": first.down.in_features,
                  "base_model_name_or_path": getattr(getattr(model, "config", None), "_name_or_path", None)}
        (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    def recognises(self, path: Path) -> bool:
        return (Path(path) / CONFIG_FILE).is_file()

    def load(self, base_model: nn.Module, path: Path) -> nn.Module:
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / CONFIG_FILE).is_file():
            raise ConfigError(f"{path}: not a bottleneck-adapter directory (no {CONFIG_FILE})")
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        if config.get("format") != FORMAT:
            raise ConfigError(f"{path / CONFIG_FILE}: unknown format {config.get('format')!r}, "
                              f"expected {FORMAT}")
        hidden_size = base_model.get_input_embeddings().embedding_dim
        if config["hidden_size"] != hidden_size:
            raise ConfigError(f"{path}: adapters for hidden size {config['hidden_size']}, "
                              f"base model has {hidden_size}")
        model = self.apply(base_model, AdapterSettings(bottleneck=config["bottleneck"],
                                                       activation=config["activation"]))
        saved = load_file(str(path / WEIGHTS_FILE))
        current = adapters(model)
        if saved.keys() != current.keys():
            missing = sorted(current.keys() - saved.keys())[:3]
            extra = sorted(saved.keys() - current.keys())[:3]
            raise ConfigError(f"{path}: adapters do not fit this base model "
                              f"(missing {missing}, unexpected {extra})")
        with torch.no_grad():
            for name, tensor in saved.items():
                current[name].copy_(tensor)
        return model.requires_grad_(False).eval()

    def merge(self, model: nn.Module) -> nn.Module:
        raise TuneforgeError("bottleneck adapters add modules of their own: "
                             "they cannot be merged into the base weights")

    def adapters_off(self, model: nn.Module):
        return lambda: disabled(model)

    def mixes_rows(self, path: Path) -> bool:
        return False


METHOD = Adapter()
