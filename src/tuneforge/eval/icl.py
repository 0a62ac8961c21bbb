"""In-context learning: k solved examples from the training data put before each question.

Examples are the `k` nearest to the question by MiniLM embedding (`similar`), or a seeded random draw
per question. They go in as earlier user/assistant turns, the most relevant next to the question; when
the prompt would exceed the context budget, the least relevant examples are dropped first (down to
zero: a question that cannot take even one example is asked zero-shot, and counted).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from tuneforge.config import ICLConfig
from tuneforge.errors import TuneforgeError
from tuneforge.types import Message, Sample


def _question(messages: list[Message]) -> str:
    return "\n".join(m.content for m in messages if m.role == "user")


def _solved(sample: Sample) -> bool:
    return sample.kind == "chat" and len(sample.messages) >= 2 and sample.messages[-1].role == "assistant"


@dataclass
class FewShot:
    prompts: list[list[Message]]
    shots: list[int]
    """Examples each prompt holds after fitting the budget."""
    requested: int

    @property
    def shortened(self) -> int:
        """Prompts holding fewer examples than requested, to fit the context budget."""
        return sum(s < self.requested for s in self.shots)


def choose_examples(pool: list[Sample], questions: list[list[Message]], cfg: ICLConfig) -> list[list[int]]:
    """For each question, pool indexes from most to least relevant."""
    k = min(cfg.k, len(pool))
    if cfg.selection == "random":
        rng = random.Random(cfg.seed)
        return [rng.sample(range(len(pool)), k) for _ in questions]
    from tuneforge.rag.embedding import embed

    pool_vectors = embed([_question(s.messages[:-1]) for s in pool])  # (P, d)
    query_vectors = embed([_question(q) for q in questions])  # (Q, d)
    sim = query_vectors @ pool_vectors.T  # (Q, P)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k].tolist()


def few_shot_prompts(pool: list[Sample], questions: list[list[Message]], cfg: ICLConfig, *,
                     count_tokens, budget: int) -> FewShot:
    """`count_tokens(messages)`: prompt tokens of a conversation as the model will see it."""
    pool = [s for s in pool if _solved(s)]
    if not pool and cfg.k:
        raise TuneforgeError("few-shot: the example pool holds no chat samples with an assistant answer")
    chosen = choose_examples(pool, questions, cfg) if cfg.k else [[] for _ in questions]
    prompts, shots = [], []
    for question, picks in zip(questions, chosen):
        while True:
            prompt = _with_examples(question, [pool[i] for i in picks])
            if not picks or count_tokens(prompt) <= budget:
                break
            picks = picks[:-1]  # drop the least relevant
        prompts.append(prompt)
        shots.append(len(picks))
    return FewShot(prompts, shots, min(cfg.k, len(pool)))


def _with_examples(question: list[Message], examples: list[Sample]) -> list[Message]:
    system = [m for m in question[:1] if m.role == "system"]
    turns: list[Message] = []
    for example in reversed(examples):  # the most relevant example ends up next to the question
        turns += [m for m in example.messages if m.role != "system"]
    return [*system, *turns, *question[len(system):]]
