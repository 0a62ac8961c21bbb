"""LLM-as-judge: rubric scores (1-10) and pairwise preferences, from any OpenAI-compatible endpoint
(through `tuneforge.llm_client`) or a local model.

Judges answer in free text, so verdicts are parsed leniently (a JSON object first, then phrasings like
`Score: 7`, `7/10`, `[[A]]`, `Winner: B`); a reply with no verdict, or a failed request, is counted
as invalid and never stops the run. Pairwise judging asks twice with the answers swapped: a judge
that prefers whichever answer comes first gives opposite verdicts, which cancel to a tie.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.config import JudgeConfig
from tuneforge.errors import ConfigError
from tuneforge.llm_client import LLMClient, LLMError, Sampling, json_objects

PROMPTS = Path(__file__).parent / "prompts"
Complete = Callable[[list[list[dict[str, str]]]], list[str | None]]
"""Judge replies to many chats; None for a request that failed."""

_SCORE = re.compile(r"(?:score|rating|评分|分数)\s*[:：=]?\s*\**\s*(\d{1,2})(?:\s*/\s*10)?|\b(\d{1,2})\s*/\s*10\b",
                    re.IGNORECASE)
_WINNER = re.compile(r"\[\[\s*(A|B|tie)\s*\]\]|(?:winner|better answer|胜者|更好的回答)\s*(?:is)?\s*[:：=]?\s*\**\s*"
                     r"\(?(A|B|tie)\b", re.IGNORECASE)


def parse_score(reply: str) -> int | None:
    """A 1-10 score from a judge's reply, or None (no score, or one out of range)."""
    for obj in json_objects(reply):
        value = obj.get("score")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value):
            return int(value) if 1 <= value <= 10 else None
    match = _SCORE.search(reply)
    if match:
        value = int(match.group(1) or match.group(2))
        return value if 1 <= value <= 10 else None
    return None


def parse_winner(reply: str) -> str | None:
    """"A", "B" or "tie" from a pairwise judge's reply, or None."""
    for obj in json_objects(reply):
        value = obj.get("winner")
        if isinstance(value, str) and value.strip().lower() in ("a", "b", "tie"):
            return _canonical(value)
    match = _WINNER.search(reply)
    return _canonical(match.group(1) or match.group(2)) if match else None


def _canonical(word: str) -> str:
    word = word.strip()
    return "tie" if word.lower() == "tie" else word.upper()


def load_prompt(custom: str | None, builtin: str) -> str:
    path = Path(custom) if custom else PROMPTS / builtin
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"judge prompt {path}: {e}") from None


def fill_prompt(template: str, **values: str) -> str:
    # str.format would trip over the JSON braces in the prompt; placeholders are replaced one by one
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


@dataclass
class RubricResult:
    scores: list[int | None]
    replies: list[str | None]

    @property
    def invalid(self) -> int:
        return sum(s is None for s in self.scores)

    @property
    def mean(self) -> float | None:
        valid = [s for s in self.scores if s is not None]
        return sum(valid) / len(valid) if valid else None


def rubric_scores(complete: Complete, questions: list[str], answers: list[str], references: list[str | None],
                  prompt: str) -> RubricResult:
    chats = [[{"role": "user", "content": fill_prompt(prompt, question=q, answer=a, reference=r or "(none)")}]
             for q, a, r in zip(questions, answers, references)]
    replies = complete(chats)
    return RubricResult([None if r is None else parse_score(r) for r in replies], replies)


@dataclass
class PairwiseResult:
    outcomes: list[str]
    """Per question: "a" (the first system wins), "b", "tie", or "invalid" (neither order gave a verdict)."""
    consistent: int
    """Questions where both orders agreed on a winner or a tie."""
    counts: Counter = field(default_factory=Counter)

    @property
    def win_rate_a(self) -> float | None:
        """Wins of system a, ties counted half, over questions with a verdict."""
        valid = len(self.outcomes) - self.counts["invalid"]
        return (self.counts["a"] + 0.5 * self.counts["tie"]) / valid if valid else None


def combine_orders(first: str | None, swapped: str | None) -> tuple[str, bool]:
    """The outcome from the verdict with (a, b) shown as (A, B) and the one with them swapped.
    Returns (outcome, whether both orders agreed)."""
    in_first = {"A": "a", "B": "b", "tie": "tie"}.get(first or "")
    in_swapped = {"A": "b", "B": "a", "tie": "tie"}.get(swapped or "")
    if in_first and in_swapped:
        return (in_first, True) if in_first == in_swapped else ("tie", False)
    return (in_first or in_swapped or "invalid"), False


def pairwise(complete: Complete, questions: list[str], answers_a: list[str], answers_b: list[str],
             references: list[str | None], prompt: str) -> PairwiseResult:
    def chat(q, r, first, second):
        return [{"role": "user", "content": fill_prompt(prompt, question=q, reference=r or "(none)",
                                                        answer_a=first, answer_b=second)}]

    n = len(questions)
    chats = [chat(q, r, a, b) for q, r, a, b in zip(questions, references, answers_a, answers_b)]
    chats += [chat(q, r, b, a) for q, r, a, b in zip(questions, references, answers_a, answers_b)]
    verdicts = [None if r is None else parse_winner(r) for r in complete(chats)]
    combined = [combine_orders(verdicts[i], verdicts[n + i]) for i in range(n)]
    outcomes = [o for o, _ in combined]
    return PairwiseResult(outcomes, sum(agreed for _, agreed in combined), Counter(outcomes))


def endpoint_judge(cfg: JudgeConfig, concurrency: int = 1) -> Complete:
    """Judge replies from an endpoint, `concurrency` requests at a time; a failed request gives None,
    except one that no request gets past (refused key, unknown model, unreachable URL), which is raised."""
    assert cfg.url is not None
    client = LLMClient(cfg.url, cfg.model, api_key_env=cfg.api_key_env, timeout=cfg.timeout, retries=cfg.retries,
                       concurrency=concurrency)

    def complete(chats):
        out: list[str | None] = [None] * len(chats)
        for i, result in client.map((messages, Sampling()) for messages in chats):
            if not isinstance(result, LLMError):
                out[i] = result.text
        return out

    return complete


def local_judge(model, tokenizer, *, max_new_tokens: int = 64, batch_size: int = 8) -> Complete:
    from tuneforge.serve.generate import generate_batch
    from tuneforge.types import Message

    def complete(chats):
        conversations = [[Message(m["role"], m["content"]) for m in chat] for chat in chats]
        return generate_batch(model, tokenizer, conversations, max_new_tokens=max_new_tokens, batch_size=batch_size)

    return complete


def make_judge(cfg: JudgeConfig) -> Complete:
    if cfg.url:
        return endpoint_judge(cfg)
    from tuneforge.models import load_model

    return local_judge(*load_model(cfg.model))
