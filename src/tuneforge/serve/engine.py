"""The generation engine: concurrent requests decode together in one continuously batched loop.

One scheduler thread owns the model. Requests wait in a bounded queue; when the engine is idle, the
first arrival opens a short window so that requests arriving together start as one batch. While a
batch decodes, new requests of the same group join it at the next step (their prompts are prefilled
and their KV cache rows merged in), and finished rows leave it, so no row waits for the longest one.
Rows of different adapter groups (see `routing`) take turns: a batch stops admitting when another
group is waiting, drains, and the oldest waiting group goes next. Rows of prefix, prompt and P-tuning
adapters batch with base rows: at prefill their virtual tokens go before the prompt (embeddings in
the input, or keys and values in the cache) and count as positions; decoding is then the same for all.

Chat prompts are formatted with the template each served model was trained with, when its run
recorded one, else with the engine's `template`.

Each request carries its own sampling settings and seed and reports through a `sink` callback:
`Delta` events as text becomes final, then exactly one `Completion`. The callback runs on the engine
thread; the HTTP server hands events to its event loop, blocking callers use `stream` / `complete`.
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from tuneforge.errors import TuneforgeError
from tuneforge.serve import kv
from tuneforge.serve.detokenize import TextStream
from tuneforge.serve.routing import ModelSet, Route
from tuneforge.serve.sampling import SamplingParams, make_generator, next_tokens
from tuneforge.types import Message

if TYPE_CHECKING:
    from tuneforge.config import TemplateConfig
    from tuneforge.formatting import ChatTemplate

log = logging.getLogger(__name__)


class EngineBusy(TuneforgeError):
    """The waiting queue is full: the caller should retry later (HTTP 429)."""


class EngineClosed(TuneforgeError):
    """The engine is shutting down and takes no new requests (HTTP 503)."""


class UnknownModel(TuneforgeError):
    """A request named a model id the engine does not serve (HTTP 404)."""


class ContextTooLong(TuneforgeError):
    """Prompt plus requested tokens exceed the model's context length (HTTP 400)."""


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    """`stop` (EOS or a stop string), `length` (max_tokens or the context), `cancelled` or `error`."""
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None
    token_ids: tuple[int, ...] = ()
    """The generated tokens, EOS or a stop string's included (training on samples needs them)."""


Event = Delta | Completion


class Handle:
    """A submitted request; `cancel()` ends its generation at the next step."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()


@dataclass
class _Row:
    handle: Handle
    route: Route
    params: SamplingParams
    prompt: list[int]
    sink: Callable[[Event], None]
    text: TextStream
    generator: torch.Generator
    generated: list[int] = field(default_factory=list)
    done: bool = False

    @property
    def context_used(self) -> int:
        return len(self.route.virtual) + len(self.prompt) + len(self.generated)

    def seen(self) -> torch.Tensor | None:
        if self.params.repetition_penalty == 1.0:
            return None
        return torch.tensor(self.prompt + self.generated)


def cache_keyword(model) -> str:
    """The forward keyword that takes the KV cache: transformers 5.24 renamed `past_key_values` to `cache`
    (the old name warns, and loses to `cache` when both are given)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PeftModel passes it on
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


class Engine:
    def __init__(self, model, tokenizer, *, model_id: str = "base", adapters: dict[str, str] | None = None,
                 template: str | TemplateConfig = "auto", max_batch_size: int = 32, batch_window_s: float = 0.01,
                 max_waiting: int = 256):
        from tuneforge.formatting import load_template

        self.tokenizer = tokenizer
        self.models = ModelSet(model, model_id, adapters)
        self.template = load_template(template, tokenizer)
        self.formats = {m: self._chat_format(route) for m, route in self.models.routes.items()}
        self.config = model.config
        self.cache_keyword = cache_keyword(self.models.base)
        self.context_length = int(getattr(model.config, "max_position_embeddings", None) or 2048)
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s
        self.max_waiting = max_waiting
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        self.eos_ids = {tokenizer.eos_token_id, *([eos] if isinstance(eos, int) else eos or [])} - {None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.device = next(model.parameters()).device

        self._cond = threading.Condition()
        self._waiting: deque[_Row] = deque()
        self._closing = False
        self._thread: threading.Thread | None = None
        # The running batch; touched only by the scheduler thread.
        self._running: list[_Row] = []
        self._cache = None
        self._mask: torch.Tensor | None = None  # (B, T) 1 = a real token
        self._next: torch.Tensor | None = None  # (B,) each row's newest token, not yet fed to the model

    # ---- requests -------------------------------------------------------------------------------------

    @property
    def model_ids(self) -> list[str]:
        return self.models.model_ids

    def _chat_format(self, route: Route) -> tuple[ChatTemplate, str | None]:
        """The template and default system prompt for `route`'s chat prompts: the one its run recorded;
        the engine's `template` (`serve --template`) only for the base and artefacts that recorded none."""
        from tuneforge.formatting import load_template

        trained = route.template
        if trained is None:
            return self.template, None
        if trained.jinja is None and trained.name == "auto" and self.template.name == "auto":
            return self.template, trained.system  # the tokenizer's own, already loaded
        try:
            return load_template(trained, self.tokenizer), trained.system
        except TuneforgeError as e:
            raise TuneforgeError(f"model '{route.model_id}' was trained with a template this engine cannot "
                                 f"load: {e}") from None

    def _format(self, model: str | None) -> tuple[ChatTemplate, str | None]:
        return self.formats.get(model or self.models.base_id, (self.template, None))

    def chat_template(self, model: str | None = None) -> ChatTemplate:
        """The template `model`'s chat prompts are rendered with (the server reads its tool-call syntax)."""
        return self._format(model)[0]

    def encode_chat(self, messages: list[Message], tools: list[dict] | None = None, *,
                    model: str | None = None) -> list[int]:
        """Token ids of the prompt for `model`'s next assistant turn, in the chat format it was trained with."""
        from tuneforge.formatting import prompt_text

        template, system = self._format(model)
        if system is not None and not (messages and messages[0].role == "system"):
            messages = [Message("system", system), *messages]  # as training added it
        # The template writes BOS and the other specials where the model expects them.
        return self.tokenizer(prompt_text(template, messages, tools), add_special_tokens=False).input_ids

    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer(text).input_ids

    def room(self, prompt: list[int], model: str | None = None) -> int:
        """How many tokens `model` may still generate after `prompt` (its virtual tokens count too)."""
        route = self.models.routes.get(model or self.models.base_id)
        return self.context_length - len(prompt) - (len(route.virtual) if route else 0)

    def check(self, prompt: list[int], params: SamplingParams, model: str | None = None) -> Route:
        """The route for `model`, after checking the request fits; raises UnknownModel / ContextTooLong."""
        route = self.models.routes.get(model or self.models.base_id)
        if route is None:
            raise UnknownModel(f"the model '{model}' does not exist; available: {', '.join(self.model_ids)}")
        if not prompt:
            raise ContextTooLong("the prompt is empty")
        virtual = len(route.virtual)
        if virtual + len(prompt) + params.max_tokens > self.context_length:
            adapter = f" after the adapter's {virtual} virtual tokens" if virtual else ""
            raise ContextTooLong(
                f"this model's maximum context length is {self.context_length} tokens; the request has "
                f"{len(prompt)} prompt tokens{adapter} and asks for {params.max_tokens} more")
        return route

    def submit(self, prompt: list[int], params: SamplingParams, sink: Callable[[Event], None], *,
               model: str | None = None) -> Handle:
        route = self.check(prompt, params, model)
        handle = Handle()
        row = _Row(handle, route, params, list(prompt), sink, TextStream(self.tokenizer, params.stop),
                   make_generator(params.seed))
        with self._cond:
            if self._closing:
                raise EngineClosed("the server is shutting down")
            if len(self._waiting) >= self.max_waiting:
                raise EngineBusy(f"{len(self._waiting)} requests are already waiting; retry later")
            self._waiting.append(row)
            self._cond.notify_all()
        self.start()
        return handle

    def stream(self, prompt: list[int], params: SamplingParams, *, model: str | None = None) -> Iterator[Event]:
        """Blocking: the request's events as they come, ending with its Completion. Leaving the loop
        early cancels the request."""
        events: queue.Queue[Event] = queue.Queue()
        handle = self.submit(prompt, params, events.put, model=model)
        try:
            while True:
                event = events.get()
                yield event
                if isinstance(event, Completion):
                    return
        finally:
            handle.cancel()

    def complete(self, prompt: list[int], params: SamplingParams, *, model: str | None = None) -> Completion:
        *_, done = self.stream(prompt, params, model=model)
        return done

    def complete_all(self, prompts: list[list[int]], params: SamplingParams | list[SamplingParams], *,
                     model: str | None = None, on_done: Callable[[int, Completion], None] | None = None
                     ) -> list[Completion]:
        """Blocking: completions of many prompts, fed to the engine a bounded number at a time;
        `params` for all, or one per prompt (e.g. each with its own seed); `on_done(index, completion)`
        is called as each finishes (in any order)."""
        results: list[Completion | None] = [None] * len(prompts)
        finished: queue.Queue[tuple[int, Completion]] = queue.Queue()
        in_flight = 2 * self.max_batch_size
        sent = received = 0
        while received < len(prompts):
            while sent < len(prompts) and sent - received < in_flight:
                i = sent
                self.submit(prompts[i], params[i] if isinstance(params, list) else params,
                            lambda e, i=i: isinstance(e, Completion) and finished.put((i, e)), model=model)
                sent += 1
            i, done = finished.get()
            results[i] = done
            received += 1
            if on_done:
                on_done(i, done)
        return results  # type: ignore[return-value]

    # ---- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._loop, name="tuneforge-engine", daemon=True)
                self._thread.start()

    def close(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop taking requests; finish the ones in hand (`drain`) or cancel them, then stop the thread.
        Requests still running after `timeout` seconds are cancelled."""
        with self._cond:
            self._closing = True
            thread = self._thread
            self._cond.notify_all()
        if not drain:
            self._cancel_all()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                self._cancel_all()
                thread.join()

    def _cancel_all(self) -> None:
        with self._cond:
            for row in [*self._waiting, *self._running]:
                row.handle.cancel()

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close(drain=exc[0] is None)

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def load(self) -> dict[str, int]:
        return {"waiting": len(self._waiting), "running": len(self._running)}

    # ---- the scheduler thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cond:
                    while not self._waiting and not self._running and not self._closing:
                        self._cond.wait()
                    if self._closing and not self._waiting and not self._running:
                        return
                    if not self._running:  # idle: let requests arriving together start together
                        deadline = time.monotonic() + self.batch_window_s
                        while (len(self._waiting) < self.max_batch_size and not self._closing
                               and (left := deadline - time.monotonic()) > 0):
                            self._cond.wait(left)
                    admitted = self._admit()
                try:
                    if admitted:
                        self._prefill(admitted)
                    if self._running:
                        self._decode_step()
                except Exception as e:  # a failed batch fails its requests, never the engine
                    log.exception("generation failed")
                    for row in [*admitted, *self._running]:
                        if not row.done:
                            self._finish(row, "error", error=f"{type(e).__name__}: {e}")
                    self._running, self._cache, self._mask, self._next = [], None, None, None

    def _admit(self) -> list[_Row]:
        """Called under the lock: the waiting rows that start now."""
        for row in [r for r in self._waiting if r.handle.cancelled]:
            self._waiting.remove(row)
            self._finish(row, "cancelled")
        if not self._waiting:
            return []
        if self._running:
            group = self._running[0].route.group
            if any(r.route.group != group for r in self._waiting):
                return []  # let this batch drain so that the other group gets its turn
        else:
            group = self._waiting[0].route.group
        room = self.max_batch_size - len(self._running)
        admitted = [r for r in self._waiting if r.route.group == group][:room]
        for row in admitted:
            self._waiting.remove(row)
        return admitted

    def _forward(self, routes: list[Route], inputs: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                 cache) -> torch.Tensor:
        """`inputs`: token ids (B, T), or input embeddings (B, T, E) when rows start with virtual ones."""
        key = "input_ids" if inputs.dim() == 2 else "inputs_embeds"
        out = self.models.forward(routes)(**{key: inputs, self.cache_keyword: cache}, attention_mask=mask,
                                          position_ids=positions, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1]  # (B, V)

    def _prefill(self, rows: list[_Row]) -> None:
        """Prefill the rows that join: each distinct (model, prompt) once, its cache rows then copied
        to every row that asked for it (n samples of one prompt, GRPO's G completions per prompt)."""
        distinct: dict[tuple, int] = {}
        copies = [distinct.setdefault((r.route.model_id, tuple(r.prompt)), len(distinct)) for r in rows]
        if len(distinct) == len(rows) or any(len(r.route.virtual) for r in rows):
            cache, mask, logits = self._prefill_rows(rows)
        else:
            firsts = [rows[copies.index(k)] for k in range(len(distinct))]
            cache, mask, logits = self._prefill_rows(firsts)
            index = torch.tensor(copies, device=self.device)
            cache.batch_select_indices(index)
            mask, logits = mask[index], logits[index]
        tokens = next_tokens(logits, [r.params for r in rows], [r.generator for r in rows],
                             [r.seen() for r in rows])  # (B,)
        if self._running:
            self._mask = kv.merge(self._cache, self._mask, cache, mask)
            self._next = torch.cat([self._next, tokens])
        else:
            self._cache, self._mask, self._next = cache, mask, tokens
        self._running += rows
        self._accept(rows, tokens.tolist())
        self._drop_finished()

    def _prefill_rows(self, rows: list[_Row]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """One forward over `rows`' prompts, left-padded: their KV cache, (B, P + T) mask and last logits (B, V)."""
        from transformers import DynamicCache

        cache = kv.roomy(DynamicCache(config=self.config))
        prefix_mask = kv.seed_prefixes(cache, [r.route.virtual.prefix for r in rows], self.device)  # (B, P)
        soft = [r.route.virtual.embeddings for r in rows]  # prompt / P-tuning: (N, E) or None
        lengths = [len(r.prompt) + (len(e) if e is not None else 0) for r, e in zip(rows, soft)]
        width = max(lengths)
        # Left-padded; the slots of virtual embeddings hold pad ids until the embeddings replace them.
        ids = torch.tensor([[self.pad_id] * (width - len(r.prompt)) + r.prompt for r in rows],
                           device=self.device)  # (B, T)
        mask = torch.tensor([[0] * (width - n) + [1] * n for n in lengths], device=self.device)  # (B, T)
        mask = torch.cat([prefix_mask, mask], dim=1)  # (B, P + T)
        # Padding does not shift positions; virtual tokens take the first ones, as under peft.
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)[:, prefix_mask.shape[1]:]  # (B, T)
        inputs = ids
        if any(e is not None for e in soft):
            inputs = self.models.embed(ids)  # (B, T, E)
            for i, e in enumerate(soft):
                if e is not None:
                    inputs[i, width - lengths[i]:width - len(rows[i].prompt)] = e
        return cache, mask, self._forward([r.route for r in rows], inputs, mask, positions, cache)

    def _decode_step(self) -> None:
        rows = self._running
        self._mask = torch.cat([self._mask, self._mask.new_ones(len(rows), 1)], dim=1)  # (B, T + 1)
        positions = self._mask.sum(dim=1, keepdim=True) - 1  # (B, 1)
        logits = self._forward([r.route for r in rows], self._next[:, None], self._mask, positions, self._cache)
        self._next = next_tokens(logits, [r.params for r in rows], [r.generator for r in rows],
                                 [r.seen() for r in rows])  # (B,)
        self._accept(rows, self._next.tolist())
        self._drop_finished()

    def _accept(self, rows: list[_Row], tokens: list[int]) -> None:
        for row, token in zip(rows, tokens):
            if row.done:
                continue
            if row.handle.cancelled:
                self._finish(row, "cancelled")
                continue
            row.generated.append(token)
            if token in self.eos_ids and not row.params.ignore_eos:
                self._finish(row, "stop")
                continue
            delta = row.text.push(token)
            if delta:
                self._emit(row, Delta(delta))
            if row.text.stopped:
                self._finish(row, "stop")
            elif len(row.generated) >= row.params.max_tokens or row.context_used >= self.context_length:
                self._finish(row, "length")

    def _finish(self, row: _Row, reason: str, error: str | None = None) -> None:
        row.done = True
        if reason in ("stop", "length"):
            tail = row.text.finish()
            if tail:
                self._emit(row, Delta(tail))
        self._emit(row, Completion(row.text.text, reason, len(row.prompt), len(row.generated), error,
                                   tuple(row.generated)))

    def _emit(self, row: _Row, event: Event) -> None:
        try:
            row.sink(event)
        except Exception:  # a consumer that went away (closed event loop) cancels its request
            log.debug("dropping an event for a request whose consumer is gone", exc_info=True)
            row.handle.cancel()

    def _drop_finished(self) -> None:
        keep = [i for i, r in enumerate(self._running) if not r.done]
        if len(keep) == len(self._running):
            return
        if not keep:
            self._running, self._cache, self._mask, self._next = [], None, None, None
            return
        index = torch.tensor(keep, device=self.device)
        self._mask = kv.keep_rows(self._cache, self._mask, index)
        self._next = self._next[index]
        self._running = [self._running[i] for i in keep]


def load_engine(model: str, adapters: dict[str, str] | None = None, *, model_id: str | None = None,
                dtype: str = "auto", device: str = "auto", **options) -> Engine:
    """Load a base model (alias, HF directory, .gguf or hub id) and its adapters into an engine.
    The base is served as `model_id` (default: the alias or the directory's name)."""
    from pathlib import Path

    from tuneforge.config import ModelConfig
    from tuneforge.models import load_model
    from tuneforge.native import mkl_dispatch
    from tuneforge.native.onednn_mm import use_onednn_linear

    mkl_dispatch.enable()  # before any product: MKL settles its kernels at its first
    base, tokenizer = load_model(ModelConfig(name_or_path=model, dtype=dtype, device=device))
    use_onednn_linear(base)  # float32 CPU products through oneDNN where MKL stays generic; else unchanged
    return Engine(base, tokenizer, model_id=model_id or Path(model).name, adapters=adapters, **options)
