"""Answers for an eval set: prompts built per strategy, decoded together by the serving engine.

Evaluation goes through `tuneforge.serve.engine.Engine` (continuous batching, per-request sampling
settings, stop strings, adapters routed per row), so an eval measures the same decoding a deployment
serves. Latency per query is the batch's wall time divided by its queries: what a query costs when
the eval set runs as one batch job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tuneforge.config import GenerationConfig
from tuneforge.errors import TuneforgeError
from tuneforge.serve.engine import Engine
from tuneforge.serve.sampling import SamplingParams
from tuneforge.types import Message


@dataclass
class Answers:
    texts: list[str]
    prompt_tokens: list[int]
    completion_tokens: list[int]
    finish_reasons: list[str]
    seconds: float

    @property
    def seconds_per_query(self) -> float:
        return self.seconds / max(len(self.texts), 1)


def sampling_params(gen: GenerationConfig) -> SamplingParams:
    return SamplingParams(max_tokens=gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
                          stop=tuple(gen.stop), seed=gen.seed)


def generate_answers(engine: Engine, prompts: list[list[Message]], gen: GenerationConfig, *,
                     model: str | None = None, on_progress: Callable[[int, int], None] | None = None) -> Answers:
    """Every prompt's answer from `engine` (route `model`: an adapter name, or the base);
    `on_progress(answered, total)` after each answer."""
    encoded = [engine.encode_chat(p) for p in prompts]
    answered = 0

    def one_done(*_) -> None:
        nonlocal answered
        answered += 1
        on_progress(answered, len(prompts))

    if on_progress:
        on_progress(0, len(prompts))
    started = time.perf_counter()
    done = engine.complete_all(encoded, sampling_params(gen), model=model, on_done=one_done if on_progress else None)
    seconds = time.perf_counter() - started
    failed = [i for i, d in enumerate(done) if d.finish_reason == "error"]
    if failed:
        raise TuneforgeError(f"generation failed for {len(failed)} prompts (first: #{failed[0]}): "
                             f"{done[failed[0]].error}")
    return Answers([d.text.strip() for d in done], [len(e) for e in encoded], [d.completion_tokens for d in done],
                   [d.finish_reason for d in done], seconds)
