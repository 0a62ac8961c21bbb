"""Finding the decoder layers of a causal LM, for methods that work layer by layer (freeze, adapter)."""

from __future__ import annotations

from torch import nn

from tuneforge.errors import TuneforgeError


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of decoder layers: `get_decoder().layers` where the model has it (Llama, Qwen, Mistral,
    ...), else its longest ModuleList (`transformer.h` in GPT-2)."""
    get_decoder = getattr(model, "get_decoder", None)
    layers = getattr(get_decoder(), "layers", None) if callable(get_decoder) else None
    if isinstance(layers, nn.ModuleList):
        return layers
    stacks = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not stacks:
        raise TuneforgeError(f"{type(model).__name__}: found no stack of decoder layers (no nn.ModuleList)")
    return max(stacks, key=len)
