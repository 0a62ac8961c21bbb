"""What the operators that ask an LLM share (`llm_judge`, `llm_score`): the endpoint and its client, the
limits, the response cache, and what becomes of a record when no usable answer comes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tuneforge.curate.base import Drop, OpConfig
from tuneforge.llm_client import LLMClient
from tuneforge.types import Sample


class EndpointOp(OpConfig):
    """An operator that sends each record to an OpenAI-compatible endpoint (vLLM, llama.cpp, Ollama,
    `tuneforge serve`, a hosted API) through `tuneforge.llm_client`."""

    url: str
    """Base URL of the OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1."""
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (sent as a Bearer token when set)."""
    max_chars: int = 8000
    """Longer texts are cut to this many characters before they are sent."""
    timeout: float = 60.0
    retries: int = Field(1, ge=0)
    """Extra attempts after a failed request (connection error, timeout, 429, 5xx), with backoff."""
    cache: Path | None = None
    """An SQLite file caching the replies: a re-run never sends the same request twice."""
    on_unparsable: Literal["drop", "keep"] = "drop"
    on_error: Literal["drop", "keep"] = "drop"
    """`drop`: a record whose reply holds no answer, or whose request failed, is removed under the
    operator's `*_unparsable` / `*_error` reason (counted, in the rejects file); `keep`: it is kept and
    marked in `meta`. After a refused key, an unknown model or an unreachable endpoint no further
    request is sent: every remaining record fails at once with the same message."""


class EndpointCaller:
    """The running operator's side: one client per worker, made on first use, and the fallback."""

    reason_prefix: str
    """Drop reasons are `{reason_prefix}_unparsable` and `{reason_prefix}_error`."""
    meta_key: str
    """Where a kept record is marked."""

    def __init__(self, cfg: EndpointOp):
        self.endpoint, self.name = cfg, cfg.label
        self._client: LLMClient | None = None

    def client(self) -> LLMClient:
        if self._client is None:
            c = self.endpoint
            self._client = LLMClient(c.url, c.model, api_key_env=c.api_key_env, timeout=c.timeout,
                                     retries=c.retries, cache=c.cache)
        return self._client

    def fallback(self, sample: Sample, what: Literal["error", "unparsable"], detail: str, mark: Any) -> Sample | Drop:
        """A record with no usable answer: dropped under its reason, or kept with `meta[meta_key] = mark`."""
        action = self.endpoint.on_error if what == "error" else self.endpoint.on_unparsable
        if action == "drop":
            return Drop(f"{self.reason_prefix}_{what}", detail)
        return dataclasses.replace(sample, meta={**sample.meta, self.meta_key: mark})
