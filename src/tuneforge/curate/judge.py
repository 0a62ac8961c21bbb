"""Safety judged by an LLM behind any OpenAI-compatible endpoint (vLLM, llama.cpp, tuneforge's own
server, a hosted API) through `tuneforge.llm_client`: each record's text goes to
`POST {url}/chat/completions` with a judging prompt, and the reply's verdict keeps or drops it.

Model replies are free text, so the verdict is parsed leniently (a JSON object with `verdict`, or the
first SAFE / UNSAFE / 安全 / 不安全 word). A reply with no verdict, or a failed request, never stops
the run: it is removed with its own reason (`judge_unparsable`, `judge_error`) so that it is counted
and can be re-judged from the rejects file, or kept and marked in `meta` when so configured.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from tuneforge.curate.base import Drop, register
from tuneforge.curate.endpoint import EndpointCaller, EndpointOp
from tuneforge.curate.text import joined_text, resolve_fields
from tuneforge.errors import ConfigError
from tuneforge.llm_client import LLMError, json_objects
from tuneforge.types import Sample

PROMPT = """You review training data for a chat model. Decide whether the text below is safe to train on:
unsafe means it helps with violence, weapons, self-harm, crime, hate or sexual content involving minors,
or contains abusive content. The text may be English or Chinese.
Answer with one JSON object and nothing else: {"verdict": "safe" or "unsafe", "reason": "<a few words>"}."""


@register
class LLMJudge(EndpointOp):
    """Ask an LLM whether each record is safe; drop the unsafe ones with the judge's reason. Records with
    no verdict or no reply: reasons judge_unparsable / judge_error, or kept with `meta["judge"]` set to
    `unparsable` / `error`."""

    op: Literal["llm_judge"] = "llm_judge"
    prompt_file: Path | None = None
    """A file whose text replaces the built-in judging prompt (sent as the system message)."""

    def build(self) -> _LLMJudge:
        return _LLMJudge(self)


class _LLMJudge(EndpointCaller):
    reason_prefix, meta_key = "judge", "judge"

    def __init__(self, cfg: LLMJudge):
        super().__init__(cfg)
        self.cfg, self.fields = cfg, resolve_fields(cfg.fields)
        try:
            self.prompt = cfg.prompt_file.read_text(encoding="utf-8") if cfg.prompt_file else PROMPT
        except OSError as e:
            raise ConfigError(f"{cfg.label}.prompt_file: {e}") from None

    def __call__(self, sample: Sample) -> Sample | Drop:
        text = joined_text(sample, self.fields)[: self.cfg.max_chars]
        if not text.strip():
            return sample
        messages = [{"role": "system", "content": self.prompt}, {"role": "user", "content": text}]
        try:
            reply = self.client().complete(messages).text
        except LLMError as e:
            return self.fallback(sample, "error", str(e), "error")
        verdict = parse_verdict(reply)
        if verdict is None:
            return self.fallback(sample, "unparsable", reply[:200], "unparsable")
        unsafe, reason = verdict
        return Drop("llm_unsafe", reason) if unsafe else sample


_WORD = re.compile(r"不安全|安全|\b(?:unsafe|safe)\b", re.IGNORECASE)


def parse_verdict(reply: str) -> tuple[bool, str] | None:
    """(unsafe, reason) from a judge's reply, or None when it holds no verdict."""
    for obj in json_objects(reply):
        verdict = obj.get("verdict")
        if isinstance(verdict, str) and (word := _WORD.fullmatch(verdict.strip())):
            return _is_unsafe(word.group(0)), str(obj.get("reason", ""))[:200]
    if word := _WORD.search(reply):
        return _is_unsafe(word.group(0)), reply.strip()[:200]
    return None


def _is_unsafe(word: str) -> bool:
    return word.lower() in ("unsafe", "不安全")
