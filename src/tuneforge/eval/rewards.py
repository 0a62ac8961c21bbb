"""Rewards: how good a completion is, as one number, for RL (`train.stage: grpo`) and best-of-n sampling.

A reward is built from a `RewardConfig` and scores a batch of completions at once:

- any evaluation metric of `tuneforge.eval.metrics` (json_schema, regex, exact_match, rouge_l, ...),
  its value as the reward; one that needs a reference scores 0 where a sample has none (counted);
- checks: `length` (1 within `min_words`..`max_words`, falling off linearly outside) and `format`
  (1 when the whole completion matches `pattern`);
- `judge`: an LLM judge's 1-10 rubric score from an OpenAI-compatible endpoint, scaled to 0..1;
- your own `module:function`, `(completion, reference) -> float | bool | None`.

`Rewards` is their weighted sum. A reward that raises, returns something that is not a finite number,
or (judge) gives no verdict scores 0 for that completion and is counted in `RewardScores.failures`,
with its first error kept: a broken reward is reported, and never stops a training run.

    rewards = build_rewards([{"name": "json_schema", "json_schema": "schema.json"},
                             {"name": "length", "max_words": 40, "weight": 0.2}])
    scores = rewards(completions, references, prompts)
    scores.total        # [float] per completion
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tuneforge.config import MetricConfig, RewardConfig
from tuneforge.errors import ConfigError
from tuneforge.eval.judge import load_prompt, make_judge, rubric_scores
from tuneforge.eval.metrics import build_metrics
from tuneforge.text import tokens

BatchScore = Callable[[Sequence[str], Sequence[str | None], Sequence[str]], Sequence[object]]
"""(completions, references, prompts) -> one value per completion: a number (bool counts), None where
it does not apply (no reference), or an exception instance for a completion it failed on."""


@dataclass(frozen=True)
class Reward:
    name: str
    weight: float
    score: BatchScore
    per_completion: bool = True
    """Whether an error concerns one completion (scored one at a time) or the whole batch (judge)."""


@dataclass
class RewardScores:
    total: list[float]
    """The weighted sum per completion."""
    by_reward: dict[str, list[float]]
    """Each reward's own value per completion (0 where it failed or did not apply)."""
    failures: Counter = field(default_factory=Counter)
    """Reward name -> completions it failed on (raised, no verdict, not a finite number)."""
    not_applicable: Counter = field(default_factory=Counter)
    """Reward name -> completions it could not score (a reference metric without a reference)."""
    errors: dict[str, str] = field(default_factory=dict)
    """Reward name -> its first error message."""


class Rewards:
    """A weighted sum of rewards; `rewards(completions, references, prompts)` -> `RewardScores`."""

    def __init__(self, rewards: Sequence[Reward]):
        names = [r.name for r in rewards]
        if not rewards:
            raise ConfigError("rewards: give at least one")
        if len(set(names)) != len(names):
            raise ConfigError(f"rewards: a name appears twice in {names}; give one of them another `name` "
                              f"(a function reward) or combine them")
        self.rewards = list(rewards)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rewards]

    def __call__(self, completions: Sequence[str], references: Sequence[str | None] | None = None,
                 prompts: Sequence[str] | None = None) -> RewardScores:
        n = len(completions)
        references = list(references) if references is not None else [None] * n
        prompts = list(prompts) if prompts is not None else [""] * n
        out = RewardScores([0.0] * n, {})
        for reward in self.rewards:
            values = self._values(reward, completions, references, prompts, out)
            out.by_reward[reward.name] = values
            out.total = [t + reward.weight * v for t, v in zip(out.total, values)]
        return out

    @staticmethod
    def _values(reward: Reward, completions, references, prompts, out: RewardScores) -> list[float]:
        def fail(message: str, count: int = 1) -> None:
            out.failures[reward.name] += count
            out.errors.setdefault(reward.name, message)

        if reward.per_completion:
            raw: list[object] = []
            for c, r, p in zip(completions, references, prompts):
                try:
                    raw.append(reward.score([c], [r], [p])[0])
                except Exception as e:  # a user's reward may raise anything; it must not stop the run
                    raw.append(e)
        else:
            try:
                raw = list(reward.score(completions, references, prompts))
            except Exception as e:
                fail(f"{type(e).__name__}: {e}", len(completions))
                return [0.0] * len(completions)
        values = []
        for value in raw:
            if isinstance(value, Exception):
                fail(f"{type(value).__name__}: {value}")
                values.append(0.0)
            elif value is None:
                out.not_applicable[reward.name] += 1
                values.append(0.0)
            elif isinstance(value, (bool, int, float)) and math.isfinite(value):
                values.append(float(value))
            else:
                fail(f"returned {value!r}, not a finite number")
                values.append(0.0)
        return values


def _one_at_a_time(fn: Callable[[str, str | None], float | None]) -> BatchScore:
    return lambda completions, references, prompts: [fn(c, r) for c, r in zip(completions, references)]


def _metric(cfg: RewardConfig) -> Reward:
    metric_cfg = MetricConfig(name=cfg.name, function=cfg.function, pattern=cfg.pattern, json_schema=cfg.json_schema)
    (metric,) = build_metrics([metric_cfg])
    return Reward(cfg.name, cfg.weight, _one_at_a_time(metric.score))


def _length(cfg: RewardConfig) -> Reward:
    low, high = cfg.min_words, cfg.max_words
    if high is None:
        raise ConfigError(f"reward '{cfg.name}': needs `max_words:` (and optionally `min_words:`)")
    if low > high:
        raise ConfigError(f"reward '{cfg.name}': min_words {low} is above max_words {high}")

    def score(completion: str, reference: str | None) -> float:
        n = len(tokens(completion))
        if n < low:
            return n / low
        return 1.0 if n <= high else max(0.0, 1.0 - (n - high) / high)

    return Reward(cfg.name, cfg.weight, _one_at_a_time(score))


def _format(cfg: RewardConfig) -> Reward:
    if not cfg.pattern:
        raise ConfigError(f"reward '{cfg.name}': needs `pattern:`, the regular expression a whole reply matches")
    try:
        pattern = re.compile(cfg.pattern, re.DOTALL)
    except re.error as e:
        raise ConfigError(f"reward '{cfg.name}': invalid pattern {cfg.pattern!r}: {e}") from None
    return Reward(cfg.name, cfg.weight, _one_at_a_time(lambda c, r: float(bool(pattern.fullmatch(c.strip())))))


def _judge(cfg: RewardConfig) -> Reward:
    if cfg.judge is None:
        raise ConfigError(f"reward '{cfg.name}': needs `judge:` with the endpoint (url, model, api_key_env)")
    complete = make_judge(cfg.judge)
    prompt = load_prompt(cfg.judge.rubric_file, "rubric.txt")

    def score(completions, references, prompts) -> list[object]:
        result = rubric_scores(complete, list(prompts), list(completions), list(references), prompt)
        # No verdict (or a failed request) is a failure, not a score of 0 the judge gave.
        return [_NoVerdict() if s is None else (s - 1) / 9 for s in result.scores]

    return Reward(cfg.name, cfg.weight, score, per_completion=False)


class _NoVerdict(Exception):
    def __str__(self) -> str:
        return "the judge gave no 1-10 score (or its request failed)"


CHECKS: dict[str, Callable[[RewardConfig], Reward]] = {"length": _length, "format": _format, "judge": _judge}
"""Rewards that are not evaluation metrics (`length` replaces the metric of that name, a word count)."""


def build_reward(cfg: RewardConfig | str | dict) -> Reward:
    cfg = cfg if isinstance(cfg, RewardConfig) else RewardConfig.model_validate(cfg)
    if cfg.function is None and cfg.name in CHECKS:
        return CHECKS[cfg.name](cfg)
    try:
        return _metric(cfg)
    except ConfigError as e:
        if cfg.function is None and str(e).startswith(f"unknown metric '{cfg.name}'"):
            raise ConfigError(f"{e}; or a reward check: {', '.join(CHECKS)}") from None
        raise


def build_rewards(configs: Sequence[RewardConfig | str | dict]) -> Rewards:
    """The weighted sum of the rewards `configs` describe; a misspelt name names the closest one."""
    return Rewards([build_reward(c) for c in configs])

