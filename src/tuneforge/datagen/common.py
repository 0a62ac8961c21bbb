"""What the four modes share: the teacher's client and sampling, reading seeds and prompts, the checks
on a generated instruction, and judging replies on a 1-10 rubric."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.datagen.recipe import Endpoint, Filters, Recipe
from tuneforge.errors import DataError
from tuneforge.eval.judge import fill_prompt, load_prompt, parse_score
from tuneforge.llm_client import LLMClient, LLMError, Messages, Reply, ResponseCache, Sampling
from tuneforge.types import Sample

OnProgress = Callable[[int, int, dict[str, int]], None]
"""(units done, units planned, the teacher's usage so far): units are prompts or requests, per mode."""


def make_client(endpoint: Endpoint, cache: ResponseCache) -> LLMClient:
    return LLMClient(endpoint.url, endpoint.model, api_key_env=endpoint.api_key_env, timeout=endpoint.timeout,
                     retries=endpoint.retries, concurrency=endpoint.concurrency, cache=cache)


def sampling(endpoint: Endpoint, request_index: int, n: int = 1, **changes: Any) -> Sampling:
    """The endpoint's sampling settings for one request; the seed moves with the request's index, so
    requests differ from each other and a re-run repeats each one (and finds it in the cache)."""
    values: dict[str, Any] = {"temperature": endpoint.temperature, "top_p": endpoint.top_p,
                              "max_tokens": endpoint.max_tokens, "n": n, "response_format": endpoint.response_format,
                              "seed": None if endpoint.seed is None else endpoint.seed + request_index}
    return Sampling(**{**values, **changes})


def provenance(recipe: Recipe, endpoint: Endpoint, **extra: Any) -> dict[str, Any]:
    return {"mode": recipe.mode, "teacher": endpoint.model,
            "sampling": {"temperature": endpoint.temperature, "top_p": endpoint.top_p,
                         "max_tokens": endpoint.max_tokens, "seed": endpoint.seed}, **extra}


def read_records(path: Path, what: str) -> list[Sample]:
    """Every record of a dataset file (any format tuneforge reads; a .txt file is one prompt per line).
    A missing or empty file is an error naming it."""
    from tuneforge.io import read_samples

    if not path.exists():
        raise DataError(str(path), f"no such file ({what}); relative paths are relative to the recipe's folder")
    samples, _ = read_samples(str(path))
    if not samples:
        raise DataError(str(path), f"no records: the {what} file is empty")
    return samples


def prompt_of(sample: Sample) -> tuple[Messages, str | None]:
    """A record's conversation up to its last user turn, and the reply after it (a reference), if any."""
    if sample.text is not None and not sample.messages:
        return [{"role": "user", "content": sample.text}], None
    messages = [{"role": m.role, "content": m.content} for m in sample.messages]
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        raise DataError(sample.where, "no user turn to answer")
    after = messages[last_user + 1:]
    reference = after[0]["content"] if after and after[0]["role"] == "assistant" else None
    return messages[:last_user + 1], reference


@dataclass
class Prompt:
    id: str
    """`p{line}`: unique in the run whatever ids the file holds, so resuming can go by it."""
    messages: Messages
    reference: str | None
    source_id: str | None


def load_prompts(path: Path, system: str | None) -> list[Prompt]:
    """The prompts of a dataset file, each with `system` put first when it has no system message."""
    prompts = []
    for i, sample in enumerate(read_records(path, "prompts")):
        messages, reference = prompt_of(sample)
        if system and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system}, *messages]
        prompts.append(Prompt(f"p{i}", messages, reference, sample.id))
    return prompts


def instruction_of(sample: Sample) -> str:
    messages, _ = prompt_of(sample)
    return str(messages[-1]["content"]).strip()


# ---------------------------------------------------------------- checks on a generated instruction

_STARTS_WELL = re.compile(r"^[\w\"'“(\[]", re.UNICODE)


@dataclass
class InstructionChecks:
    filters: Filters

    def __post_init__(self) -> None:
        words = sorted(self.filters.blocklist, key=len, reverse=True)
        self.blocked = re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE) \
            if words else None

    def reason(self, text: str) -> str | None:
        """Why a generated instruction is not kept (too_short, too_long, blocklisted, not_an_instruction,
        language), or None."""
        n = len(text.split())
        if n < self.filters.min_words:
            return "too_short"
        if n > self.filters.max_words:
            return "too_long"
        if self.blocked is not None and self.blocked.search(text):
            return "blocklisted"
        if not _STARTS_WELL.match(text) or text.rstrip().endswith(":"):
            return "not_an_instruction"
        if self.filters.languages is not None:
            from tuneforge.curate.filters import detect_language

            if detect_language(text)[0] not in self.filters.languages:
                return "language"
        return None


# ---------------------------------------------------------------- judging replies 1-10

@dataclass
class Judge:
    """Scores replies on the evaluation judge's 1-10 rubric (`tuneforge/eval/prompts/rubric.txt`) through the
    same client machinery: concurrent, retried, cached."""

    client: LLMClient
    prompt: str

    @classmethod
    def build(cls, endpoint: Endpoint, cache: ResponseCache) -> Judge:
        return cls(make_client(endpoint, cache), load_prompt(None, "rubric.txt"))

    def scores(self, items: Iterable[tuple[str, str, str | None]]) -> Iterator[tuple[int, int | None | LLMError]]:
        """(index, score, None when the reply holds none, or the request's error) per (question, answer,
        reference), in completion order."""
        requests = [([{"role": "user", "content": fill_prompt(self.prompt, question=q, answer=a,
                                                               reference=r or "(none)")}], Sampling(max_tokens=64))
                    for q, a, r in items]
        for i, result in self.client.map(requests):
            yield i, result if isinstance(result, LLMError) else parse_score(result.text)


def texts(reply: Reply | LLMError) -> list[str]:
    return [] if isinstance(reply, LLMError) else reply.texts
