"""Stage `grpo`: online RL with verifiable rewards (Shao et al. 2024, DeepSeekMath).

Each step takes a batch of prompts, samples G completions of each with the serving engine on the
policy as it is now, scores them with the configured rewards, and normalises each reward within its
prompt's group: the advantage A = (r - mean_group) / std_group says which completions beat their
siblings. The loss is PPO's clipped surrogate per completion token,

    -min(ρ A, clip(ρ, 1 - ε, 1 + ε_high) A) + β KL_k3(π_ref || π),   ρ = π / π_sampling,

with the reference the model with its adapters off (or a frozen copy for full fine-tuning), and the
k3 estimator exp(ref - logp) - (ref - logp) - 1 per token. With one optimizer step per batch
(`iterations: 1`) ρ is 1 in value (its gradient is the policy gradient); with more, the same
completions train several steps and ρ measures how far the policy has moved since it sampled them.

Token losses are averaged per completion then over completions (`grpo`), over all tokens of the
batch (`dapo`), or summed over completions × max_new_tokens (`dr_grpo`, no length bias). The loss
is normalised within each micro-batch; the loop weighs micro-batches by their completions.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from tuneforge.config import Config, GRPOConfig
from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.eval.rewards import Rewards, build_rewards
from tuneforge.serve.sampling import SamplingParams
from tuneforge.train.batching import Batch
from tuneforge.train.rollout import Prompt, Sequences, chat_prompts, sample_completions

if TYPE_CHECKING:
    from tuneforge.train.stages import StageInputs, StageSetup

log = logging.getLogger("tuneforge.train")


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True) -> torch.Tensor:
    """(N,) rewards of consecutive groups of `group_size` -> (N,) advantages: each minus its group's
    mean, divided by the group's std (unbiased, as GRPO) unless `scale` is off (Dr. GRPO)."""
    groups = rewards.view(-1, group_size)  # (B, G)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (groups.std(dim=1, keepdim=True) + 1e-4)
    return centred.flatten()


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
                epsilon: float, epsilon_high: float, beta: float = 0.0, ref_logp: torch.Tensor | None = None,
                loss_type: str = "grpo", max_new_tokens: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped policy-gradient loss with a k3 KL penalty. logp, old_logp, ref_logp, mask (N, K);
    advantages (N,). Returns the loss and its statistics (kl, clip_fraction)."""
    ratio = torch.exp(logp - old_logp)  # (N, K)
    a = advantages[:, None]  # (N, 1)
    clipped = ratio.clamp(1 - epsilon, 1 + epsilon_high)
    per_token = -torch.min(ratio * a, clipped * a)  # (N, K)
    kl = torch.zeros_like(logp)
    if beta and ref_logp is not None:
        delta = ref_logp - logp
        kl = torch.exp(delta) - delta - 1
        per_token = per_token + beta * kl
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)).mean()
    elif loss_type == "dapo":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1)
    elif loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (mask.shape[0] * max_new_tokens)
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}")
    n = mask.sum().clamp(min=1)
    # Clipped where the clip takes the gradient away: above the range with A > 0, below it with A < 0.
    is_clipped = ((ratio > 1 + epsilon_high) & (a > 0)) | ((ratio < 1 - epsilon) & (a < 0))
    stats = {"kl": float((kl.detach() * mask).sum() / n), "clip_fraction": float((is_clipped.float() * mask).sum() / n)}
    return loss, stats


@dataclass
class Rollout:
    prompt_index: list[int]
    seqs: Sequences
    rewards: torch.Tensor  # (N,)
    advantages: torch.Tensor  # (N,)
    old_logp: torch.Tensor | None  # (N, K), with iterations > 1
    ref_logp: torch.Tensor | None  # (N, K), with beta > 0


class GRPOLoss(nn.Module):
    """forward(prompt_index, iteration, rollout_seed) -> (loss × completions, completions).

    Samples at a batch's first iteration and keeps the rollout for the next ones. In eval mode it
    answers each prompt once, greedily, and returns minus the summed reward: the run's validation
    "loss" is minus the mean reward of greedy replies."""

    def __init__(self, model: nn.Module, tokenizer, template, prompts: Sequence[Prompt], rewards: Rewards,
                 cfg: GRPOConfig, *, pad_id: int, ref_model: nn.Module | None = None,
                 reference_mode: Callable[[], AbstractContextManager] | None = None):
        super().__init__()
        self.model, self.ref_model = model, ref_model
        self.tokenizer, self.template, self.prompts, self.rewards, self.cfg = tokenizer, template, prompts, rewards, cfg
        self.reference_mode, self.pad_id = reference_mode, pad_id
        if cfg.beta and ref_model is None and reference_mode is None:
            raise ValueError("a KL penalty (beta > 0) needs a reference: a frozen copy or the adapters off")
        self.rollout: Rollout | None = None
        self.failures_seen: Counter = Counter()
        self._reset_stats()

    def _reset_stats(self) -> None:
        self.stats: dict[str, list] = {}
        self.samples: list[dict] = []

    def _add(self, **values) -> None:
        for k, v in values.items():
            self.stats.setdefault(k, []).append(v)

    def _params(self, n: int, seed: int, greedy: bool = False) -> list[SamplingParams]:
        c = self.cfg
        if greedy:
            return [SamplingParams(max_tokens=c.max_new_tokens)] * n
        return [SamplingParams(max_tokens=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p, seed=seed + i)
                for i in range(n)]

    def _score(self, index: list[int], completions) -> torch.Tensor:
        prompts = [self.prompts[i] for i in index]
        scores = self.rewards([c.text for c in completions], [p.reference for p in prompts],
                              [p.text for p in prompts])
        for name, count in scores.failures.items():
            if not self.failures_seen[name]:
                log.warning("reward '%s' failed (scored 0, counted in reward_failures): %s", name,
                            scores.errors.get(name, "?"))
            self.failures_seen[name] += count
        if self.training:
            for name, values in scores.by_reward.items():
                self._add(**{f"reward_{name}": sum(values) / len(values)})
            self._add(reward_failures=sum(scores.failures.values()))
        return torch.tensor(scores.total, dtype=torch.float32)

    @torch.no_grad()
    def _reference_logprobs(self, seqs: Sequences) -> torch.Tensor:
        if self.ref_model is not None:
            return seqs.token_logprobs(self.ref_model, self.cfg.temperature)
        assert self.reference_mode is not None
        with self.reference_mode():
            return seqs.token_logprobs(self.model, self.cfg.temperature)

    def sample(self, index: list[int], seed: int) -> Rollout:
        c = self.cfg
        t0 = time.perf_counter()
        prompt_ids = [self.prompts[i].ids for i in index for _ in range(c.generations)]  # G per prompt, together
        done = sample_completions(self.model, self.tokenizer, self.template, prompt_ids,
                                  self._params(len(prompt_ids), seed))
        seconds = time.perf_counter() - t0
        device = next(self.model.parameters()).device
        seqs = Sequences.build(prompt_ids, [c.token_ids for c in done], self.pad_id, device)
        rewards = self._score([i for i in index for _ in range(c.generations)], done)
        advantages = group_advantages(rewards, c.generations, c.scale_rewards).to(device)
        old = ref = None
        if c.iterations > 1:
            with torch.no_grad():
                old = seqs.token_logprobs(self.model, c.temperature)
        if c.beta:
            ref = self._reference_logprobs(seqs)
        lengths = seqs.completion_mask.sum(dim=1)
        groups = rewards.view(-1, c.generations)
        self._add(reward=float(rewards.mean()), reward_std=float(groups.std(dim=1).mean()),
                  completion_length=float(lengths.mean()),
                  truncated=sum(d.finish_reason == "length" for d in done) / len(done),
                  completions_per_s=len(done) / max(seconds, 1e-9), rollout_s=seconds)
        for k in range(min(c.samples_in_report - len(self.samples), len(done))):
            self.samples.append({"prompt": self.prompts[index[k // c.generations]].text, "completion": done[k].text,
                                 "reward": round(float(rewards[k]), 4)})
        return Rollout(index, seqs, rewards, advantages, old, ref)

    def forward(self, prompt_index: torch.Tensor, iteration: torch.Tensor,
                rollout_seed: torch.Tensor) -> tuple[torch.Tensor, int]:
        index = prompt_index.tolist()
        if not self.training:
            return self._greedy_reward(index)
        if int(iteration) == 0 or self.rollout is None or self.rollout.prompt_index != index:
            self.rollout = self.sample(index, int(rollout_seed))
        r, c = self.rollout, self.cfg
        logp = r.seqs.token_logprobs(self.model, c.temperature)  # (N, K)
        old = r.old_logp if r.old_logp is not None else logp.detach()
        loss, stats = policy_loss(logp, old, r.advantages, r.seqs.completion_mask, epsilon=c.epsilon,
                                  epsilon_high=c.epsilon_high or c.epsilon, beta=c.beta, ref_logp=r.ref_logp,
                                  loss_type=c.loss_type, max_new_tokens=c.max_new_tokens)
        self._add(**stats)
        n = len(r.rewards)
        return loss * n, n

    @torch.no_grad()
    def _greedy_reward(self, index: list[int]) -> tuple[torch.Tensor, int]:
        done = sample_completions(self.model, self.tokenizer, self.template, [self.prompts[i].ids for i in index],
                                  self._params(len(index), 0, greedy=True))
        return -self._score(index, done).sum(), len(index)

    def pop_stats(self) -> dict:
        """Means over the step's micro-batches; `samples`: a few completions with their rewards."""
        out: dict = {k: sum(v) / len(v) for k, v in self.stats.items()}
        if "reward_failures" in self.stats:
            out["reward_failures"] = sum(self.stats["reward_failures"])
            out["reward_failures_total"] = sum(self.failures_seen.values())
        if self.samples:
            out["samples"] = self.samples
        self._reset_stats()
        return out


def prompt_batches(n_prompts: int, *, batch_size: int, iterations: int, seed: int, epoch: int,
                   generations: int) -> list[Batch]:
    """An epoch's batches of prompt indices, a pure function of (seed, epoch); each batch comes
    `iterations` times in a row, tagged with its iteration and the seed its completions sample with."""
    order = list(range(n_prompts))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    out = []
    for b in range(0, n_prompts, batch_size):
        index = torch.tensor(order[b:b + batch_size])
        rollout_seed = (seed * 1_000_003 + epoch * 10_007 + b) * 1_000  # the G × B completions add 0 .. B·G-1
        for k in range(iterations):
            out.append(Batch({"prompt_index": index, "iteration": torch.tensor(k),
                              "rollout_seed": torch.tensor(rollout_seed)}, len(index) * generations, len(index)))
    return out


class GRPO:
    """Stage `grpo`: chat prompts (a last assistant turn is the rewards' reference)."""

    sample_kind = "chat"
    needs_reference_copy = True

    def template_cutoff(self, cfg: Config) -> int:
        return cfg.template.cutoff_len

    def build(self, x: StageInputs) -> StageSetup:
        from tuneforge.models import load_tokenizer
        from tuneforge.train.data import split_holdout
        from tuneforge.train.stages import StageSetup

        cfg, tc = x.cfg, x.cfg.train
        g = tc.grpo
        assert g is not None  # the config refuses stage grpo without it
        if x.method.uses_prompt_tokens:
            raise ConfigError(f"train.stage: grpo does not train method '{cfg.method.name}' (virtual tokens) yet; "
                              f"use lora, dora, ia3, freeze or full")
        rewards = build_rewards(g.rewards)
        tokenizer = load_tokenizer(cfg.model)
        prompts, dropped = chat_prompts(x.samples, tokenizer, cfg)
        if dropped:
            print(f"grpo: {len(prompts)} prompts, {sum(dropped.values())} dropped "
                  f"({', '.join(f'{r} {n}' for r, n in sorted(dropped.items()))})", flush=True)
        if not prompts:
            raise TuneforgeError("grpo: no usable prompts (chat samples with a user turn that fit "
                                 "template.cutoff_len with max_new_tokens to spare)")
        train_idx, val_idx = split_holdout(list(range(len(prompts))), tc.val_size, tc.seed)
        all_prompts = prompts
        if x.val_samples is not None:
            val_prompts, _ = chat_prompts(x.val_samples, tokenizer, cfg)
            val_idx = list(range(len(prompts), len(prompts) + len(val_prompts)))
            all_prompts = prompts + val_prompts
        loss_fn = GRPOLoss(x.model, tokenizer, cfg.template, all_prompts, rewards, g, pad_id=x.pad_id,
                           ref_model=x.ref_model,
                           reference_mode=None if x.ref_model is not None else x.method.adapters_off(x.model))

        def batches_of(epoch: int) -> list[Batch]:
            batches = prompt_batches(len(train_idx), batch_size=tc.batch_size, iterations=g.iterations, seed=tc.seed,
                                     epoch=epoch, generations=g.generations)
            for b in batches:  # positions in the training split -> prompt indices
                b.tensors["prompt_index"] = torch.tensor([train_idx[i] for i in b.tensors["prompt_index"].tolist()])
            return batches

        evals = {}
        if val_idx:
            evals["val"] = [Batch({"prompt_index": torch.tensor(val_idx[b:b + tc.batch_size]),
                                   "iteration": torch.tensor(0), "rollout_seed": torch.tensor(0)},
                                  len(val_idx[b:b + tc.batch_size]), 0)
                            for b in range(0, len(val_idx), tc.batch_size)]
        return StageSetup([all_prompts[i] for i in train_idx], [all_prompts[i] for i in val_idx], loss_fn,
                          batches_of, evals)
