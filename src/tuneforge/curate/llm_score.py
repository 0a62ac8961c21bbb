"""Rubric scoring by an LLM behind any OpenAI-compatible endpoint: each record's reply is scored 1-5 on
every criterion, with a reason, and kept when its scores reach the threshold.

The record's final assistant turn is scored in the context of the conversation before it (a preference
record's `chosen` reply; a raw text record as a whole). Criteria are built-in names (helpfulness,
correctness, format) or `{name, description}` of your own. Scores land in `meta["llm_score"]`, so a
later `quality_model` fit can learn from them.

Model replies are free text, so they are read leniently: a JSON object keyed by criterion (a number
or `{score, reason}` each), a list of `{criterion, score, reason}` objects, or lines such as
`Helpfulness: 4/5 - clear`. A reply missing a criterion, or a failed request, never stops the run: the
record is removed as `score_unparsable` / `score_error` (counted, in the rejects file) or kept and
marked, as configured. With `cache:` set, replies are kept in SQLite by a hash of the request, so a
re-run (or a run resumed after a crash) sends no request twice.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tuneforge.curate.base import Drop, register
from tuneforge.curate.endpoint import EndpointCaller, EndpointOp
from tuneforge.llm_client import LLMError, Sampling
from tuneforge.types import Message, Sample

BUILTIN_CRITERIA = {
    "helpfulness": "Does the reply do what the user asked, fully and directly, at a useful level of detail?",
    "correctness": "Is everything the reply states true, and is every step of its reasoning or code right?",
    "format": "Is the reply well formed: in the format the user asked for, clearly structured, complete "
              "(not cut off), free of garbage, repetition and stray markup?",
}

PROMPT = """You grade replies written by an AI assistant. Score the reply on each criterion from 1 (very poor) \
to 5 (excellent):
{criteria}

Answer with one JSON object and nothing else, one key per criterion, e.g.
{example}"""


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str


@register
class LLMScore(EndpointOp):
    """Score each record's reply 1-5 per criterion with an LLM; keep those that reach the threshold.
    Records with no scores or no reply: reasons score_unparsable / score_error (with the client's message:
    a refused key names its environment variable), or kept with `meta["llm_score"]` = {"error": ...}."""

    op: Literal["llm_score"] = "llm_score"
    criteria: list[str | Criterion] = ["helpfulness", "correctness", "format"]
    """Built-in names (helpfulness, correctness, format) or {name, description} of your own."""
    threshold: float = Field(3.0, ge=1, le=5)
    """Records whose `aggregate` score is below this are removed (reason llm_score_low)."""
    aggregate: Literal["mean", "min"] = "mean"
    """How the criteria's scores combine before the threshold: their mean, or the lowest one."""
    max_tokens: int = Field(256, ge=16)
    """Most tokens the grader may write (its JSON with a reason per criterion)."""

    @field_validator("criteria")
    @classmethod
    def _known(cls, criteria: list[str | Criterion]) -> list[str | Criterion]:
        if not criteria:
            raise ValueError("at least one criterion is needed")
        for c in criteria:
            if isinstance(c, str) and c not in BUILTIN_CRITERIA:
                raise ValueError(f"unknown criterion {c!r}: built-ins are {', '.join(BUILTIN_CRITERIA)}; "
                                 "give your own as {name: ..., description: ...}")
        names = [c if isinstance(c, str) else c.name for c in criteria]
        if len(set(names)) != len(names):
            raise ValueError(f"criteria named twice: {names}")
        return criteria

    def resolved(self) -> dict[str, str]:
        """Criterion name -> description, in order."""
        return dict((c, BUILTIN_CRITERIA[c]) if isinstance(c, str) else (c.name, c.description) for c in self.criteria)

    def build(self) -> _LLMScore:
        return _LLMScore(self)


class _LLMScore(EndpointCaller):
    reason_prefix, meta_key = "score", "llm_score"

    def __init__(self, cfg: LLMScore):
        super().__init__(cfg)
        self.cfg = cfg
        self.criteria = cfg.resolved()
        self.prompt = rubric_prompt(self.criteria)

    def __call__(self, sample: Sample) -> Sample | Drop:
        conversation = scored_conversation(sample)
        if conversation is None:
            return Drop("no_reply", "nothing to score: the record has no assistant reply")
        messages = [{"role": "system", "content": self.prompt},
                    {"role": "user", "content": conversation[-self.cfg.max_chars:]}]
        try:
            reply = self.client().complete(messages, Sampling(max_tokens=self.cfg.max_tokens)).text
        except LLMError as e:
            return self.fallback(sample, "error", str(e), {"error": "error", "detail": str(e)})
        scores = parse_scores(reply, list(self.criteria))
        missing = [c for c in self.criteria if c not in scores]
        if missing:
            detail = f"no score for {', '.join(missing)}: {reply[:200]}"
            return self.fallback(sample, "unparsable", detail, {"error": "unparsable", "detail": detail})
        values = [scores[c][0] for c in self.criteria]
        mean = sum(values) / len(values)
        combined = mean if self.cfg.aggregate == "mean" else min(values)
        result = {"scores": {c: s for c, (s, _) in scores.items()}, "reasons": {c: r for c, (_, r) in scores.items()},
                  "mean": round(mean, 3), "min": min(values), "model": self.cfg.model}
        if combined < self.cfg.threshold:
            low = min(self.criteria, key=lambda c: scores[c][0])
            return Drop("llm_score_low", f"{self.cfg.aggregate} {combined:.2f} < {self.cfg.threshold:g}; "
                                         f"{low} {scores[low][0]}: {scores[low][1]}"[:300])
        return dataclasses.replace(sample, meta={**sample.meta, "llm_score": result})


def rubric_prompt(criteria: dict[str, str]) -> str:
    listed = "\n".join(f"- {name}: {description}" for name, description in criteria.items())
    example = json.dumps({name: {"score": 4, "reason": "<a few words>"} for name in criteria})
    return PROMPT.format(criteria=listed, example=example)


def scored_conversation(sample: Sample) -> str | None:
    """The text the judge reads: the conversation, then the reply to score marked as such; None when
    there is no reply."""
    if sample.kind == "text":
        return f"Text to score:\n{sample.text}" if (sample.text or "").strip() else None
    turns, reply = split_reply(sample)
    if not reply:
        return None
    context = "\n\n".join(f"[{m.role}]\n{m.content}" for m in turns)
    answer = "\n\n".join(m.content for m in reply)
    return f"{context}\n\n[reply to score]\n{answer}"


def split_reply(sample: Sample) -> tuple[list[Message], list[Message]]:
    """(the turns before the reply, the reply): a chat record's final assistant turns, a preference
    record's `chosen`."""
    if sample.kind == "preference":
        return sample.messages, sample.chosen or []
    cut = len(sample.messages)
    while cut > 0 and sample.messages[cut - 1].role == "assistant":
        cut -= 1
    return sample.messages[:cut], sample.messages[cut:]


def parse_scores(reply: str, criteria: list[str]) -> dict[str, tuple[int, str]]:
    """Criterion -> (score 1-5, reason) for every criterion the reply scores; the rest are absent."""
    found: dict[str, tuple[int, str]] = {}
    wanted = {c.lower(): c for c in criteria}
    for value in _json_values(reply):
        for name, score, reason in _entries(value):
            key = wanted.get(name.strip().lower())
            if key and key not in found and (s := _score(score)) is not None:
                found[key] = (s, reason)
    for key in criteria:
        if key not in found and (match := _line_pattern(key).search(reply)):
            found[key] = (int(match.group(1)), match.group(2).strip(" -:.,;")[:200])
    return found


def _json_values(reply: str) -> Iterator[Any]:
    """Every JSON object or array written in the reply (nested ones parsed whole), outermost first."""
    decoder = json.JSONDecoder()
    i = 0
    while (start := _next_open(reply, i)) >= 0:
        try:
            value, end = decoder.raw_decode(reply, start)
        except ValueError:
            i = start + 1
            continue
        yield value
        i = end


def _next_open(text: str, start: int) -> int:
    hits = [p for p in (text.find("{", start), text.find("[", start)) if p >= 0]
    return min(hits) if hits else -1


def _entries(value: Any) -> Iterator[tuple[str, Any, str]]:
    """(criterion, score, reason) from `{name: score | {score, reason}}`, `[{criterion, score, reason}]`
    or `{"scores": {...}}`."""
    if isinstance(value, list):
        for v in value:
            yield from _entries(v)
    if not isinstance(value, dict):
        return
    name = value.get("criterion", value.get("name"))
    if isinstance(name, str) and "score" in value:
        yield name, value["score"], str(value.get("reason", ""))
        return
    for key, v in value.items():
        if isinstance(v, dict) and "score" in v:
            yield str(key), v["score"], str(v.get("reason", ""))
        elif isinstance(v, dict | list):
            yield from _entries(v)
        else:
            yield str(key), v, str(value.get(f"{key}_reason", value.get("reason", "")))


def _score(value: Any) -> int | None:
    if isinstance(value, str):
        value = value.strip().split("/")[0].strip()
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if 1 <= value <= 5 and value == int(value) else None


def _line_pattern(name: str) -> re.Pattern[str]:
    # "Helpfulness: 4/5 - clear", "**correctness** = 3 (one slip)"
    return re.compile(rf"{re.escape(name)}\W{{0,6}}([1-5])(?:\s*/\s*5)?\b[ \t]*(.*)", re.IGNORECASE)
