"""The Playground: the base model and up to three trained artefacts answer the same conversation side
by side, streamed, through the serving engine (`tuneforge.serve`) loaded in the workbench. The
few-shot and RAG variants build the prompt as the compare lab does (`eval.icl`, `rag.prompt`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuneforge.errors import TuneforgeError
from tuneforge.types import Message

MAX_ADAPTERS = 3
BASE = "base"


class PlaygroundError(TuneforgeError):
    """A request the playground cannot serve (too many adapters, a missing index or pool)."""


class Playground:
    """One engine at a time: loaded for the base and the chosen artefacts, reloaded when they change."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._engine: Any = None
        self._adapters: dict[str, str] = {}
        self._lock = threading.Lock()

    def engine(self, adapters: dict[str, str]):
        if len(adapters) > MAX_ADAPTERS:
            raise PlaygroundError(f"at most {MAX_ADAPTERS} adapters side by side, got {len(adapters)}")
        if BASE in adapters:
            raise PlaygroundError(f"'{BASE}' names the base model; give the adapter another name")
        with self._lock:
            if self._engine is None or adapters != self._adapters:
                from tuneforge.serve.engine import load_engine

                if self._engine is not None:
                    self._engine.close(drain=False)
                self._engine = None  # a failed load leaves none rather than a closed one
                self._engine = load_engine(self.model, adapters, model_id=BASE)
                self._adapters = dict(adapters)
            return self._engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.close(drain=False)
                self._engine = None


def with_variant(messages: list[Message], variant: str, *, pool: Path | None = None, index: Path | None = None,
                 k: int = 4, count_tokens=None, budget: int = 2048) -> list[Message]:
    """The conversation as the compare lab's strategy sends it: as is, with `k` solved examples of the
    pool before it (few_shot), or with the last question grounded in retrieved chunks (rag)."""
    if variant == "plain":
        return messages
    if variant == "few_shot":
        from tuneforge.config import ICLConfig
        from tuneforge.eval.icl import few_shot_prompts
        from tuneforge.io import read_samples

        if pool is None:
            raise PlaygroundError("few_shot needs an example pool: a data file under the root")
        samples, _ = read_samples(str(pool))
        return few_shot_prompts(samples, [messages], ICLConfig(k=k, selection="random"),
                                count_tokens=count_tokens, budget=budget).prompts[0]
    if variant == "rag":
        from tuneforge.rag.index import load_index
        from tuneforge.rag.prompt import rag_prompt

        if index is None:
            raise PlaygroundError("rag needs an index folder (`tuneforge rag index`) under the root")
        question = next(m.content for m in reversed(messages) if m.role == "user")
        return rag_prompt(messages, load_index(index).search(question, top_k=k))
    raise PlaygroundError(f"unknown variant {variant!r}: plain, few_shot or rag")


def endpoint_reply(url: str, model: str, messages: list[Message], *, max_tokens: int, temperature: float) -> str:
    """One reply from an OpenAI-compatible endpoint through tuneforge's client. No API key is sent: a URL
    typed into a page must not receive the key of the environment the workbench runs in."""
    from tuneforge.llm_client import LLMClient, Sampling

    client = LLMClient(url, model, api_key_env=None, retries=1)
    try:
        return client.complete([m.to_dict() for m in messages],
                               Sampling(temperature=temperature, max_tokens=max_tokens)).text
    finally:
        client.close()


def stream_reply(engine, messages: list[Message], model: str, params) -> Iterator[str]:
    """NDJSON lines: `{"delta": text}` as tokens come, then `{"done": finish_reason, "tokens": n}`."""
    from tuneforge.serve.engine import Completion

    prompt = engine.encode_chat(messages, model=model)
    for event in engine.stream(prompt, params, model=model):
        if isinstance(event, Completion):
            yield json.dumps({"done": event.finish_reason, "tokens": event.completion_tokens,
                              "error": event.error}) + "\n"
        else:
            yield json.dumps({"delta": event.text}) + "\n"
