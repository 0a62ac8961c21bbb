"""The loss of one micro-batch, as modules so that DDP / FSDP wrap (and synchronise) them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import nn

from tuneforge.methods._peft import peft_quiet
from tuneforge.train.losses import dpo_loss, lm_loss_sum, logits_loss_sum, sequence_logprobs

SEGMENT_ATTENTION = "tuneforge_segments"


def _base(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def segment_lengths(position_ids: torch.Tensor) -> list[list[int]]:
    """Lengths of the packed samples of each row: a sample starts wherever the position does not
    follow on from the previous one (transformers' own rule for packed rows). (B, T) -> B lists."""
    starts = torch.ones_like(position_ids, dtype=torch.bool)  # (B, T)
    starts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    out = []
    for row in starts:
        at = row.nonzero().flatten().tolist() + [row.shape[0]]
        out.append([b - a for a, b in zip(at, at[1:])])
    return out


def _segment_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                       segment_lengths: list[list[int]] | None = None, **kwargs):
    """Causal SDPA on each packed sample separately: the block-diagonal mask's result without computing
    the masked-out blocks. query (B, H, T, D), key/value (B, H_kv, T, D) -> (B, T, H, D), as
    transformers' attention functions return it. Without `segment_lengths` (padded batches,
    generation) it is transformers' own SDPA attention, with the mask transformers built."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if segment_lengths is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    groups = query.shape[1] // key.shape[1]
    # Repeated kv heads and contiguous slices: SDPA's GQA mode on strided slices is ~3x slower on CPU.
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    rows = []
    for b, lengths in enumerate(segment_lengths):
        pieces = zip(*(t[b:b + 1].split(lengths, dim=2) for t in (query, key, value)))
        rows.append(torch.cat([nn.functional.scaled_dot_product_attention(
            q.contiguous(), k.contiguous(), v.contiguous(), dropout_p=dropout, scale=scaling,
            is_causal=q.shape[2] > 1) for q, k, v in pieces], dim=2))
    return torch.cat(rows).transpose(1, 2).contiguous(), None  # (B, H, T, D) -> (B, T, H, D)


def _route_attention_through_segments(config) -> None:
    """Point an SDPA model's attention at `_segment_attention` for good, not only around the forward
    pass: activation checkpointing recomputes each layer during backward, and the recomputation must
    attend per sample too. Masks are built as for SDPA, so every other caller sees SDPA unchanged."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if SEGMENT_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(SEGMENT_ATTENTION, _segment_attention)
        AttentionMaskInterface.register(SEGMENT_ATTENTION, sdpa_mask)
    config._attn_implementation = SEGMENT_ATTENTION


class CausalLMLoss(nn.Module):
    """forward(**inputs, labels, weights=None) -> (summed loss over labelled positions, their count);
    `weights` (B, T), where the batch has them, scale each position's loss (see `losses.lm_loss_sum`).

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
        config = _base(model).config
        self.per_sample_attention = (not self.whole_forward
                                     and config._attn_implementation in ("sdpa", SEGMENT_ATTENTION))
        if self.per_sample_attention:
            _route_attention_through_segments(config)

    def forward(self, labels: torch.Tensor, weights: torch.Tensor | None = None,
                **inputs: torch.Tensor) -> tuple[torch.Tensor, int]:  # labels, weights (B, T)
        if self.whole_forward:
            with peft_quiet():
                logits = self.model(**inputs, use_cache=False).logits  # (B, V_tokens + T, V)
            return logits_loss_sum(logits[:, -labels.shape[1]:], labels, weights)
        base = _base(self.model)
        if self.per_sample_attention and set(inputs) == {"input_ids", "position_ids"}:
            # Packed rows: attention per sample instead of a block-diagonal mask over the whole row
            # (a row of ~5 samples does ~1/5 of the attention work).
            inputs["segment_lengths"] = segment_lengths(inputs["position_ids"])
        hidden = base.get_decoder()(**inputs, use_cache=False).last_hidden_state  # (B, T, H)
        return lm_loss_sum(hidden, labels, base.get_output_embeddings(), self.chunk_size, weights)


class DPOLoss(nn.Module):
    """forward(chosen/rejected ids, labels, masks) -> (summed DPO loss over pairs, number of pairs).

    The reference is the same model with its adapters disabled for PEFT methods (no second copy in
    memory), a frozen copy for full fine-tuning, or log-probs precomputed once and carried in the
    batch (`ref_chosen`, `ref_rejected`)."""

    def __init__(self, model: nn.Module, *, beta: float, kind: str = "sigmoid", ref_model: nn.Module | None = None,
                 reference_mode: Callable[[], AbstractContextManager] | None = None):
        """`reference_mode()` is a context in which `model` behaves as the base (adapters off)."""
        super().__init__()
        self.model = model
        self.ref_model = ref_model
        if ref_model is None and reference_mode is None:
            raise ValueError("DPO needs a reference: a frozen copy or a way to switch the adapters off")
        self.reference_mode = reference_mode
        self.beta, self.kind = beta, kind
        self.stats = {"reward_margin": 0.0, "reward_accuracy": 0.0, "pairs": 0}

    def pair_logprobs(self, model: nn.Module, chosen_ids, chosen_labels, chosen_mask, rejected_ids,
                      rejected_labels, rejected_mask) -> tuple[torch.Tensor, torch.Tensor]:
        # One forward over chosen and rejected stacked: (2B, T).
        width = max(chosen_ids.shape[1], rejected_ids.shape[1])
        pad = lambda t, v: nn.functional.pad(t, (0, width - t.shape[1]), value=v)  # noqa: E731
        ids = torch.cat([pad(chosen_ids, 0), pad(rejected_ids, 0)])
        labels = torch.cat([pad(chosen_labels, -100), pad(rejected_labels, -100)])
        mask = torch.cat([pad(chosen_mask, 0), pad(rejected_mask, 0)])
        with peft_quiet():
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits  # (2B, T, V)
        logps = sequence_logprobs(logits, labels)  # (2B,)
        return logps.chunk(2)

    @torch.no_grad()
    def reference_logprobs(self, **pair) -> tuple[torch.Tensor, torch.Tensor]:
        if self.ref_model is not None:
            return self.pair_logprobs(self.ref_model, **pair)
        with self.reference_mode():
            return self.pair_logprobs(self.model, **pair)

    def forward(self, ref_chosen: torch.Tensor | None = None, ref_rejected: torch.Tensor | None = None,
                **pair: torch.Tensor) -> tuple[torch.Tensor, int]:
        policy_chosen, policy_rejected = self.pair_logprobs(self.model, **pair)
        if ref_chosen is None:
            ref_chosen, ref_rejected = self.reference_logprobs(**pair)
        losses, margin, won = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected,
                                       beta=self.beta, kind=self.kind)
        if self.training:
            self.stats["reward_margin"] += float(margin.sum())
            self.stats["reward_accuracy"] += float(won.sum())
            self.stats["pairs"] += int(losses.shape[0])
        return losses.sum(), int(losses.shape[0])

    def pop_stats(self) -> dict[str, float]:
        """Mean reward margin and accuracy since the last call (for logging once per step)."""
        n = max(self.stats["pairs"], 1)
        out = {"reward_margin": self.stats["reward_margin"] / n, "reward_accuracy": self.stats["reward_accuracy"] / n}
        self.stats = {"reward_margin": 0.0, "reward_accuracy": 0.0, "pairs": 0}
        return out
