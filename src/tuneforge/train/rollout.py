"""Sampling for online RL: prompts from chat data, completions from tuneforge's serving engine on the
very model being trained (no copy: eval mode and no grad while it decodes, its adapters on), and the
padded tensors the policy-gradient loss runs on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuneforge.config import Config, TemplateConfig
from tuneforge.errors import TuneforgeError
from tuneforge.serve.engine import Completion, Engine
from tuneforge.serve.sampling import SamplingParams
from tuneforge.types import Message, Sample


@dataclass
class Prompt:
    ids: list[int]
    """The chat rendered up to the next assistant turn, as the template renders it for serving."""
    text: str
    """The last user message (what a judge is shown as the question)."""
    reference: str | None
    """The sample's last assistant turn, if it had one: the reference rewards compare with."""


def chat_prompts(samples: Sequence[Sample], tokenizer, cfg: Config) -> tuple[list[Prompt], Counter]:
    """One prompt per chat sample (its last assistant turn, if any, becomes the reference); samples
    with no user turn, or whose prompt leaves no room for `max_new_tokens` within the cutoff, are
    dropped and counted by reason."""
    from tuneforge.formatting import load_template, prompt_text

    assert cfg.train.grpo is not None
    template = load_template(cfg.template, tokenizer)
    room = cfg.template.cutoff_len - cfg.train.grpo.max_new_tokens
    prompts: list[Prompt] = []
    dropped: Counter = Counter()
    for sample in samples:
        messages = list(sample.messages)
        reference = None
        if messages and messages[-1].role == "assistant":
            reference = messages.pop().content
        users = [m for m in messages if m.role == "user"]
        if not users:
            dropped["no_user_turn"] += 1
            continue
        if cfg.template.system is not None and messages[0].role != "system":
            messages = [Message("system", cfg.template.system), *messages]  # as training and serving add it
        ids = tokenizer(prompt_text(template, messages, sample.tools), add_special_tokens=False).input_ids
        if len(ids) > room:
            dropped["too_long"] += 1
            continue
        prompts.append(Prompt(ids, str(users[-1].content or ""), reference))
    return prompts, dropped


def sample_completions(model: nn.Module, tokenizer, template: TemplateConfig, prompts: Sequence[list[int]],
                       params: Sequence[SamplingParams]) -> list[Completion]:
    """One completion per (prompt, params), decoded together by the engine's continuous batching on
    `model` as it is now. The model is put in eval mode for it (no dropout) and back afterwards."""
    was_training = model.training
    model.eval()
    try:
        with Engine(model, tokenizer, template=template, max_batch_size=len(prompts), batch_window_s=0.0) as engine:
            done = engine.complete_all(list(prompts), list(params))
    finally:
        model.train(was_training)
    failed = [c for c in done if c.finish_reason == "error"]
    if failed:
        raise TuneforgeError(f"sampling failed for {len(failed)} of {len(done)} completions: {failed[0].error}")
    return done


@dataclass
class Sequences:
    """Completions grouped by their prompt (the G completions of one prompt are consecutive). Each
    group's prompt runs through the model once and its keys and values serve every completion of it,
    so a step's forward and backward cost one prompt per group, not one per completion; gradients
    flow back through the shared keys and values as through G copies."""

    groups: list[tuple[torch.Tensor, torch.Tensor]]
    """Per prompt: its ids but the last (1, P - 1), and its tails (n, 1 + k): the prompt's last token,
    whose logits predict the first completion token, then each completion, right-padded to the
    group's longest, k."""
    completion_mask: torch.Tensor  # (N, K) 1 for a completion token, K the longest of all

    @classmethod
    def build(cls, prompts: Sequence[list[int]], completions: Sequence[Sequence[int]], pad_id: int,
              device: torch.device) -> Sequences:
        mask = torch.zeros(len(prompts), max(len(c) for c in completions))
        groups = []
        start = 0
        while start < len(prompts):
            prompt, end = prompts[start], start + 1
            while end < len(prompts) and prompts[end] == prompt:
                end += 1
            tails = torch.full((end - start, 1 + max(len(c) for c in completions[start:end])), pad_id)
            for row in range(start, end):
                tails[row - start, :1 + len(completions[row])] = torch.tensor([prompt[-1], *completions[row]])
                mask[row, :len(completions[row])] = 1
            groups.append((torch.tensor([prompt[:-1]], dtype=torch.long).to(device), tails.to(device)))
            start = end
        return cls(groups, mask.to(device))

    def token_logprobs(self, model: nn.Module, temperature: float) -> torch.Tensor:
        """log p(token) of every completion position under `model`, at the sampling temperature: (N, K),
        0 where there is no token. The LM head runs on completion tokens only, not on padding."""
        from tuneforge.methods._peft import peft_quiet

        out = torch.zeros_like(self.completion_mask)
        row = 0
        with peft_quiet():
            for head, tails in self.groups:
                n, width = tails.shape
                keep = self.completion_mask[row:row + n, :width - 1].bool()  # (n, k)
                logits = _completion_logits(model, head, tails, keep).float() / temperature  # (M, V)
                targets = tails[:, 1:][keep]  # (M,)
                logp = logits.gather(-1, targets[:, None]).squeeze(-1) - logits.logsumexp(dim=-1)
                rows, columns = keep.nonzero(as_tuple=True)
                out = out.index_put((rows + row, columns), logp)
                row += n
        return out


def _completion_logits(model: nn.Module, head: torch.Tensor, tails: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Logits (M, V) of the tails' (n, W) positions that `keep` (n, W - 1) marks, after the shared head
    (1, P): the head runs once and its KV cache is repeated for the n tails. Right padding needs no
    mask: a causal model's real tokens never see the pads after them. Activation checkpointing drops
    the cache during training, so then each tail runs after its own copy of the head."""
    wrapped: Any = model  # a PeftModel, or the transformers model itself
    base = wrapped.get_base_model() if hasattr(wrapped, "get_base_model") else wrapped
    lm_head = base.get_output_embeddings()
    decoder: Any = base.get_decoder()
    if type(lm_head) is not nn.Linear:  # e.g. a LoRA-wrapped head: the model's own forward applies it
        decoder, lm_head = model, None
    n, width = tails.shape
    if head.shape[1] == 0:
        out = decoder(input_ids=tails, use_cache=False)
    elif model.training and any(getattr(m, "gradient_checkpointing", False) for m in model.modules()):
        out = decoder(input_ids=torch.cat([head.expand(n, -1), tails], dim=1), use_cache=False)
    else:
        cache = decoder(input_ids=head, use_cache=True, **({"logits_to_keep": 1} if lm_head is None else {})
                        ).past_key_values
        cache.batch_repeat_interleave(n)
        out = decoder(input_ids=tails, past_key_values=cache, use_cache=True)
    states = out.logits if lm_head is None else out.last_hidden_state  # (n, ≥W, V or H)
    picked = states[:, -width:-1][keep]  # (M, V or H): position j predicts token j + 1
    return picked if lm_head is None else lm_head(picked)
