"""Sampling for online RL: prompts from chat data, completions from tuneforge's serving engine on the
very model being trained (no copy: eval mode and no grad while it decodes, its adapters on), and the
padded tensors the policy-gradient loss runs on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

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
    """Prompts left-padded to one width, completions after them, right-padded: every completion
    starts at column `start`, so one forward keeps only the logits from there on."""

    input_ids: torch.Tensor  # (N, T)
    attention_mask: torch.Tensor  # (N, T)
    position_ids: torch.Tensor  # (N, T)
    completion_mask: torch.Tensor  # (N, K) 1 for a completion token, K = T - start
    start: int

    @classmethod
    def build(cls, prompts: Sequence[list[int]], completions: Sequence[Sequence[int]], pad_id: int,
              device: torch.device) -> Sequences:
        start = max(len(p) for p in prompts)
        width = max(len(c) for c in completions)
        ids = torch.full((len(prompts), start + width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (p, c) in enumerate(zip(prompts, completions)):
            ids[i, start - len(p):start + len(c)] = torch.tensor([*p, *c])
            mask[i, start - len(p):start + len(c)] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        return cls(ids.to(device), mask.to(device), positions.to(device), mask[:, start:].float().to(device), start)

    def token_logprobs(self, model: nn.Module, temperature: float) -> torch.Tensor:
        """log p(token) of every completion position under `model`, at the sampling temperature: (N, K)."""
        from tuneforge.methods._peft import peft_quiet

        keep = self.input_ids.shape[1] - self.start + 1
        with peft_quiet():
            logits = model(input_ids=self.input_ids, attention_mask=self.attention_mask,
                           position_ids=self.position_ids, use_cache=False, logits_to_keep=keep).logits
        logits = logits[:, :-1].float() / temperature  # (N, K, V): position start-1+k predicts start+k
        targets = self.input_ids[:, self.start:]  # (N, K)
        return logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(dim=-1)
