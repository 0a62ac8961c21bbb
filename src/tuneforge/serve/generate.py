"""Blocking generation helpers over the engine: one streamed reply, many replies, a whole dataset file.

`generate_file` is resumable: replies are written in input order, one JSON line each, flushed as
they are ready; a rerun keeps the lines already written (after checking they belong to the same
input) and generates only the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tuneforge.errors import TuneforgeError
from tuneforge.serve.engine import Delta, Engine
from tuneforge.serve.sampling import SamplingParams
from tuneforge.types import Message, Sample


def generate_reply(model, tokenizer, messages: list[Message], *, template: str = "auto",
                   max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
                   stream: Callable[[str], None] | None = None) -> str:
    """Render `messages` plus the generation prompt, generate, and return the reply text."""
    with Engine(model, tokenizer, template=template) as engine:
        return stream_reply(engine, messages, SamplingParams(max_tokens=max_new_tokens, temperature=temperature,
                                                             top_p=top_p, seed=seed), stream=stream)


def stream_reply(engine: Engine, messages: list[Message], params: SamplingParams, *, model: str | None = None,
                 stream: Callable[[str], None] | None = None) -> str:
    """One reply from a running engine, its text passed to `stream` piece by piece as it is generated."""
    for event in engine.stream(engine.encode_chat(messages, model=model), params, model=model):
        if isinstance(event, Delta):
            if stream:
                stream(event.text)
        elif event.finish_reason == "error":
            raise TuneforgeError(f"generation failed: {event.error}")
    return event.text


def generate_batch(model, tokenizer, conversations: list[list[Message]], *, template: str = "auto",
                   max_new_tokens: int = 128, batch_size: int = 8) -> list[str]:
    """Greedy replies to many conversations, up to `batch_size` decoding together."""
    with Engine(model, tokenizer, template=template, max_batch_size=batch_size) as engine:
        prompts = [engine.encode_chat(c) for c in conversations]
        done = engine.complete_all(prompts, SamplingParams(max_tokens=max_new_tokens))
    return [d.text.strip() for d in done]


def prompt_of(sample: Sample) -> list[Message]:
    """The conversation to answer: a chat sample without its final assistant reply (kept as the reference)."""
    if sample.kind != "chat" or not sample.messages:
        raise TuneforgeError(f"{sample.where}: generation needs chat samples (messages), got a {sample.kind} sample")
    messages = sample.messages
    return messages[:-1] if messages[-1].role == "assistant" else messages


def _done_lines(out: Path, ids: list[str]) -> int:
    """How many replies `out` already holds, after checking they answer the first inputs in order."""
    if not out.exists():
        return 0
    lines = out.read_text(encoding="utf-8").splitlines()
    complete = []
    for n, line in enumerate(lines):
        try:
            complete.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines) - 1:
                break  # a line cut short by an interrupted run is written again
            raise TuneforgeError(f"{out}:{n + 1}: not a JSON line; move the file away to start over") from None
    for n, record in enumerate(complete):
        if n >= len(ids) or record.get("id") != ids[n]:
            raise TuneforgeError(f"{out}:{n + 1}: written for other input (id {record.get('id')!r}, expected "
                                 f"{ids[n] if n < len(ids) else 'none'!r}); move the file away to start over")
    if len(complete) != len(lines):  # rewrite without the cut line
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in complete), encoding="utf-8")
    return len(complete)


def generate_file(engine: Engine, samples: list[Sample], out: Path, params: SamplingParams, *,
                  model: str | None = None, on_progress: Callable[[int, int], None] | None = None) -> int:
    """Answer every sample, appending `{"id", "messages", "reply", "reference", "finish_reason",
    "completion_tokens"}` lines to `out` in input order; returns how many were generated now."""
    ids = [s.id or str(i) for i, s in enumerate(samples)]
    start = _done_lines(out, ids)
    todo = samples[start:]
    if on_progress:
        on_progress(start, len(samples))
    ready: dict[int, dict] = {}
    written = start
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as f:

        def finished(i: int, done) -> None:
            nonlocal written
            if done.finish_reason == "error":
                raise TuneforgeError(f"{samples[start + i].where}: generation failed: {done.error}")
            sample = todo[i]
            last = sample.messages[-1] if sample.messages else None
            ready[start + i] = {"id": ids[start + i], "messages": [m.to_dict() for m in prompt_of(sample)],
                                "reply": done.text,
                                "reference": last.content if last and last.role == "assistant" else None,
                                "finish_reason": done.finish_reason, "completion_tokens": done.completion_tokens}
            while written in ready:  # keep input order, so that a rerun knows where to go on
                f.write(json.dumps(ready.pop(written), ensure_ascii=False) + "\n")
                f.flush()
                written += 1
            if on_progress:
                on_progress(written, len(samples))

        engine.complete_all([engine.encode_chat(prompt_of(s), s.tools, model=model) for s in todo], params,
                            model=model, on_done=finished)
    return len(todo)
