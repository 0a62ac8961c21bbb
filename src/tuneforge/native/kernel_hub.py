"""transformers' kernel hub and tuneforge's routes through the same layers.

Models that `from_pretrained` loads have transformers' kernel hub on (where the `kernels` package is
installed): the layers it may replace (RMSNorms, the attention's RoPE function, ...) get their forward
reset by every `train()` and `eval()`, which kernelizes them again for the new mode. That would undo
`fused_norm` and `fused_rope` at the start of training. The hub maps no kernel to the CPU, so on a
model whose weights are all on the CPU switching it off changes nothing else; on other devices the
hub's kernels stay and the two routes leave those layers to it.
"""

from __future__ import annotations

from torch import nn


def own_forwards_stay(model: nn.Module) -> bool:
    """Make forwards set on `model`'s kernel-hub layers stay: switch the hub off for each transformers model
    inside it whose weights are all on the CPU. False when one on another device has the hub on."""
    from transformers import PreTrainedModel

    for module in model.modules():
        if isinstance(module, PreTrainedModel) and getattr(module, "use_kernels", False):  # (older transformers: none)
            if any(p.device.type != "cpu" for p in module.parameters()):
                return False
            module.use_kernels = False  # transformers' reset: each layer back to its own forward
    return True
