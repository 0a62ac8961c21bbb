"""Freeze tuning: train only the last N decoder layers and/or parameters matched by name patterns,
optionally with the embeddings and LM head; everything else stays frozen."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import Field
from torch import nn

from tuneforge.errors import ConfigError
from tuneforge.methods._layers import decoder_layers
from tuneforge.methods.full import WholeModelMethod
from tuneforge.settings import MethodSettings


class FreezeSettings(MethodSettings):
    name: Literal["freeze"] = "freeze"
    last_layers: int = Field(2, ge=0)
    """Train every parameter of the last N decoder layers (0: none)."""
    patterns: list[str] = Field(default_factory=list)
    """Also train parameters whose full names match one of these globs, e.g. `*.mlp.*` or
    `model.norm.*`; with `last_layers: 0`, train only these."""
    embeddings: bool = False
    """Also train the input embeddings."""
    lm_head: bool = False
    """Also train the LM head (the same tensor as the embeddings when the model ties them)."""


class Freeze(WholeModelMethod):
    name = "freeze"
    config_cls = FreezeSettings

    def apply(self, model: nn.Module, cfg: FreezeSettings) -> nn.Module:
        model.requires_grad_(False)
        layers = decoder_layers(model)
        if cfg.last_layers > len(layers):
            raise ConfigError(f"'method.last_layers': {cfg.last_layers}, "
                              f"but the model has {len(layers)} layers")
        for layer in layers[len(layers) - cfg.last_layers:]:
            layer.requires_grad_(True)
        params = dict(model.named_parameters())
        for pattern in cfg.patterns:
            matched = [name for name in params if fnmatchcase(name, pattern)]
            if not matched:  # a typo would otherwise silently train less than asked
                raise ConfigError(f"'method.patterns': '{pattern}' matches no parameter; names look like "
                                  f"{', '.join(list(params)[:3])}")
            for name in matched:
                params[name].requires_grad_(True)
        if cfg.embeddings:
            model.get_input_embeddings().requires_grad_(True)
        if cfg.lm_head:
            model.get_output_embeddings().requires_grad_(True)
        if not any(p.requires_grad for p in model.parameters()):
            raise ConfigError("method 'freeze' would train nothing: "
                              "set last_layers > 0, patterns, embeddings or lm_head")
        return model

    def recognises(self, path: Path) -> bool:
        return False  # a whole model directory, as full writes: method `full` reads it back


METHOD = Freeze()
