"""Where stage `grpo` gets its rewards from: a builder registered here.

Rewards are built from evaluation's metrics and judge (`tuneforge.eval.rewards`), and evaluation
already depends on training (its reference-answer perplexity uses the training loss module), so an
import of evaluation from training would close a loop. `tuneforge.eval.rewards` registers its builder
here when imported; when nothing is registered, the default builder is loaded by name, the way a
user's `module:function` reward is. (The loop is still there in substance: it goes away when the
perplexity stops borrowing the training loss, and then this module can import the builder.)
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from tuneforge.config import GRPOConfig
from tuneforge.errors import TuneforgeError


class Scores(Protocol):
    total: list[float]
    by_reward: dict[str, list[float]]
    failures: Counter
    errors: dict[str, str]


RewardFunction = Callable[[Sequence[str], Sequence[str | None], Sequence[str]], Scores]
"""(completions, references, prompts) -> their scores."""

_builder: list[Callable[[GRPOConfig], RewardFunction]] = []
DEFAULT_BUILDER = "tuneforge.eval.rewards"
"""The module that registers the built-in rewards' builder when imported."""


def register_reward_builder(builder: Callable[[GRPOConfig], RewardFunction]) -> None:
    _builder[:] = [builder]


def build_reward_function(cfg: GRPOConfig) -> RewardFunction:
    if not _builder:
        importlib.import_module(DEFAULT_BUILDER)
    if not _builder:
        raise TuneforgeError(f"stage grpo: {DEFAULT_BUILDER} registered no reward builder")
    return _builder[0](cfg)
