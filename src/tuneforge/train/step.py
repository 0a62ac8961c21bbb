"""The loss of one micro-batch, as a module so that DDP / FSDP wrap (and synchronise) it."""

from __future__ import annotations

import torch
from torch import nn

from tuneforge.train.losses import lm_loss_sum, logits_loss_sum


def _base(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class CausalLMLoss(nn.Module):
    """forward(**inputs, labels) -> (summed loss over labelled positions, their count).

    Methods that modify modules in place (full, freeze, LoRA, DoRA, IA3, adapters) take the fast path:
    the decoder's hidden states go straight into the chunked LM-head cross-entropy. Methods that add
    virtual tokens (prefix, prompt, p-tuning) must run the wrapped model's own forward.
    """

    def __init__(self, model: nn.Module, *, whole_forward: bool, chunk_size: int = 2048):
        super().__init__()
        self.model = model
        head = _base(model).get_output_embeddings()
        # A LoRA-wrapped head is not a plain Linear: its delta would be skipped by the fused loss.
        self.whole_forward = whole_forward or type(head) is not nn.Linear or head.bias is not None
        self.chunk_size = chunk_size

    def forward(self, labels: torch.Tensor, **inputs: torch.Tensor) -> tuple[torch.Tensor, int]:  # labels (B, T)
        if self.whole_forward:
            logits = self.model(**inputs, use_cache=False).logits  # (B, V_tokens + T, V)
            return logits_loss_sum(logits[:, -labels.shape[1]:], labels)
        base = _base(self.model)
        hidden = base.get_decoder()(**inputs, use_cache=False).last_hidden_state  # (B, T, H)
        return lm_loss_sum(hidden, labels, base.get_output_embeddings(), self.chunk_size)
