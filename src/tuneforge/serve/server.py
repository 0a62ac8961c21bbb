"""An OpenAI-compatible HTTP server over the generation engine (FastAPI + uvicorn).

Endpoints: `POST /v1/chat/completions`, `POST /v1/completions` (both streaming with server-sent events
or not), `GET /v1/models` (the base and every adapter as its own model id) and `GET /health`.

Safe by default: binds 127.0.0.1 unless told otherwise; with an API key every `/v1` request needs
`Authorization: Bearer KEY`; a request names a model id, never a file; bodies are size-limited.
Every failure is an OpenAI-style error body: 400 malformed JSON (also nested deeper than
`MAX_JSON_DEPTH`, or a string that is not valid Unicode), a conversation the chat template refuses, a
prompt that does not fit the context or more prompts than `max_prompts`, 401 bad key, 404 unknown
model or route, 413 body too large, 422 invalid field, 429 queue full (with Retry-After), 503 shutting
down, 500 a failed generation. A client that disconnects cancels its generation; shutdown stops taking
requests and lets running ones finish.

Tool calling: `tools` are rendered with the served model's chat template, and replies in that
template's tool-call syntax come back as `tool_calls` (see `tool_calls`). `tool_choice: "required"` or a
named function forces the opening of a call at the start of the reply; `"none"` returns replies as text.

Recording (opt in, `record.Recorder`): each answered chat completion is stored under its `id` once
its replies are complete (before the reply, or the stream's `[DONE]`, goes out, so feedback can follow at
once), off the event loop; `POST /v1/feedback` rates a recorded reply (404 for an unknown id, and
without recording).
"""

# No `from __future__ import annotations` here: FastAPI reads the route functions' annotations to tell
# the request parameter, and they name fastapi's own classes, an optional dependency (quoted where used).
import asyncio
import functools
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException
except ImportError:  # the serve extra is missing: create_app says so
    FastAPI = Request = JSONResponse = StreamingResponse = HTTPException = None  # type: ignore[assignment,misc]

from tuneforge.errors import MissingDependency
from tuneforge.formatting.base import TemplateError
from tuneforge.serve import protocol
from tuneforge.serve.engine import (
    Completion,
    ContextTooLong,
    Delta,
    Engine,
    EngineBusy,
    EngineClosed,
    Handle,
    UnknownModel,
)
from tuneforge.serve.record import Exchange, NoSuchChoice, Recorder, UnknownExchange
from tuneforge.serve.tool_calls import ToolPlan, call_dicts, syntax_for

log = logging.getLogger(__name__)

Keep = Callable[[str, list[dict[str, Any]]], Awaitable[None]]
"""Called with a chat completion's id and its whole choices once every reply is complete."""

MAX_JSON_DEPTH = 64
"""Deeper request bodies are refused before validation (which, like rendering, recurses). Tool
parameter schemas, the deepest legitimate part, stay well within it."""


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.body, self.headers = status, protocol.error_body(message, kind, code, param), headers


class BodyTooLarge(Exception):
    pass


def _path(parts: list[str | int]) -> str:
    return ".".join(map(str, parts))


def _field(data: Any, loc: tuple[str | int, ...]) -> str:
    """The dotted name of the field a validation error is about, as the client wrote it: without the
    union members pydantic adds to `loc` (`messages.0.content`, not `messages.0.content.str`)."""
    parts: list[str | int] = []
    for part in loc:
        if isinstance(part, int) and isinstance(data, list) and 0 <= part < len(data):
            data = data[part]
        elif isinstance(part, str) and isinstance(data, dict) and (part in data or not _is_type_tag(part)):
            data = data.get(part)
        else:
            continue
        parts.append(part)
    return _path(parts)


def _is_type_tag(part: str) -> bool:
    return "[" in part or part in ("str", "int", "float", "bool", "list", "dict", "none") or part[:1].isupper()


def check_json(data: Any) -> None:
    """Refuse what Python's JSON parser lets through but nothing after it should see: nesting deeper
    than MAX_JSON_DEPTH and lone surrogates ("\\ud800", not valid Unicode, which tokenizers reject).
    Iterative, so that the check itself cannot run out of stack."""
    stack: list[tuple[Any, list[str | int]]] = [(data, [])]
    while stack:
        value, where = stack.pop()
        if len(where) > MAX_JSON_DEPTH:
            raise ApiError(400, f"the body is nested deeper than {MAX_JSON_DEPTH} levels", "invalid_request_error",
                           "invalid_value", _path(where[:1]) or None)
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                param = _path(where) or None
                raise ApiError(400, f"{param or 'the body'}: a lone surrogate ({value[e.start]!r}) at character "
                               f"{e.start}, which is not valid Unicode", "invalid_request_error", "invalid_value",
                               param) from None
        elif isinstance(value, dict):
            for key, item in value.items():
                stack.append((key, where))  # a key is checked as text at its object's place
                stack.append((item, [*where, key]))
        elif isinstance(value, list):
            stack.extend((item, [*where, i]) for i, item in enumerate(value))


def _engine_error(e: Exception) -> ApiError:
    if isinstance(e, UnknownModel):
        return ApiError(404, str(e), "not_found_error", "model_not_found", "model")
    if isinstance(e, ContextTooLong):
        return ApiError(400, str(e), "invalid_request_error", "context_length_exceeded", "messages")
    if isinstance(e, EngineBusy):
        return ApiError(429, str(e), "rate_limit_error", "queue_full", headers={"Retry-After": "1"})
    if isinstance(e, EngineClosed):
        return ApiError(503, str(e), "service_unavailable", "shutting_down")
    return ApiError(400, str(e), "invalid_request_error")


class _BodyLimit:
    """ASGI middleware: a body over `limit` bytes ends the request with 413, whether it announces its
    length or streams it in chunks."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._too_large(send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        await self.app(scope, limited_receive, send)

    async def _too_large(self, send) -> None:
        payload = json.dumps(protocol.error_body(f"request body over {self.limit} bytes",
                                                 "invalid_request_error", "request_too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


@dataclass(frozen=True)
class Settings:
    """What the route handlers need, kept on `app.state.tuneforge`."""

    engine: Engine
    api_key: str | None
    max_body_bytes: int
    max_prompts: int
    """Most prompts one /v1/completions request may hold (each is a request of its own to the engine,
    times `n`)."""
    recorder: Recorder | None = None
    """Where chat completions and feedback are stored; None: nothing is recorded."""


def _settings(request: "Request") -> Settings:
    return request.app.state.tuneforge


# ---------------------------------------------------------------- error handlers

async def api_error(request: "Request", e: ApiError) -> "JSONResponse":
    return JSONResponse(e.body, status_code=e.status, headers=e.headers)


async def body_too_large(request: "Request", e: BodyTooLarge) -> "JSONResponse":
    limit = _settings(request).max_body_bytes
    return JSONResponse(protocol.error_body(f"request body over {limit} bytes", "invalid_request_error",
                                            "request_too_large"), status_code=413)


async def http_error(request: "Request", e: "HTTPException") -> "JSONResponse":
    kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
    return JSONResponse(protocol.error_body(str(e.detail), kind), status_code=e.status_code)


async def unexpected_error(request: "Request", e: Exception) -> "JSONResponse":
    log.exception("unexpected server error")
    return JSONResponse(protocol.error_body("internal server error", "server_error"), status_code=500)


# ---------------------------------------------------------------- request checks

def authorise(request: "Request") -> None:
    api_key = _settings(request).api_key
    if api_key is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
        raise ApiError(401, "invalid or missing API key (Authorization: Bearer KEY)",
                       "authentication_error", "invalid_api_key")


async def parse(request: "Request", cls):
    """The authorised request's body as `cls`, or the ApiError that says what is wrong with it."""
    authorise(request)
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:  # also an integer of more digits than Python converts
        raise ApiError(400, f"the body is not valid JSON: {e}", "invalid_request_error") from None
    except RecursionError:
        raise ApiError(400, f"the body is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels",
                       "invalid_request_error", "invalid_value") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object", "invalid_request_error")
    check_json(data)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = _field(data, err["loc"])
        raise ApiError(422, f"{param}: {err['msg']}", "invalid_request_error", "invalid_value", param) from None


# ---------------------------------------------------------------- routes

async def health(request: "Request") -> "JSONResponse":
    engine = _settings(request).engine
    status = 503 if engine.closing else 200
    return JSONResponse({"status": "shutting_down" if engine.closing else "ok", "models": engine.model_ids,
                         **engine.load}, status_code=status)


async def list_models(request: "Request") -> dict[str, Any]:
    authorise(request)
    engine = _settings(request).engine
    created = int(time.time())
    base = engine.model_ids[0]
    return {"object": "list", "data": [
        {"id": m, "object": "model", "created": created, "owned_by": "tuneforge", "root": base,
         "parent": None if m == base else base} for m in engine.model_ids]}


def tool_plan(engine: Engine, body: protocol.ChatRequest) -> ToolPlan | None:
    """What the request does about tool calls (None: replies are text), after checking `tools` and
    `tool_choice` agree."""
    tools = body.tools or []
    names = [t.function.name for t in tools]
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ApiError(422, f"tools: the function '{twice}' is defined more than once", "invalid_request_error",
                       "invalid_value", "tools")
    choice = body.tool_choice
    if choice is None:
        choice = "auto" if tools else "none"
    named = choice.function.name if isinstance(choice, protocol.NamedToolChoice) else None
    if choice not in ("none", "auto") and not tools:
        raise ApiError(422, f"tool_choice: {named or choice!r} needs `tools` to choose from", "invalid_request_error",
                       "invalid_value", "tool_choice")
    if named is not None and named not in names:
        raise ApiError(422, f"tool_choice.function.name: '{named}' is not one of the tools ({', '.join(names)})",
                       "invalid_request_error", "invalid_value", "tool_choice.function.name")
    if choice == "none" or not tools:
        return None
    syntax = syntax_for(engine.chat_template(body.model))
    if syntax is None:
        if choice == "auto":
            return None  # the template has no tool-call format we can parse: replies stay text
        raise ApiError(400, f"tool_choice: {'a named function' if named else repr(choice)} is not supported for "
                       f"model '{body.model}': its chat template has no tool-call format tuneforge knows "
                       "(<tool_call> tags or Llama 3.1 JSON)", "invalid_request_error", "unsupported_value",
                       "tool_choice")
    if choice == "auto":
        return ToolPlan(syntax, frozenset(names))
    if named is None and len(names) == 1:
        named = names[0]  # required with one tool: that one
    return ToolPlan(syntax, frozenset(names), syntax.opening(named))


async def chat_completions(request: "Request"):
    engine = _settings(request).engine
    body = await parse(request, protocol.ChatRequest)
    plan = tool_plan(engine, body)
    try:
        prompt = engine.encode_chat([m.to_message() for m in body.messages], body.tool_dicts, model=body.model)
    except (ValueError, TemplateError) as e:  # a template that cannot render this conversation
        raise ApiError(400, str(e), "invalid_request_error", "invalid_value", "messages") from None
    forced = 0
    if plan is not None and plan.opening:  # constrained decoding: the reply starts with the call's opening
        opening = engine.tokenizer(plan.opening, add_special_tokens=False).input_ids
        prompt, forced = prompt + opening, len(opening)
    recorder = _settings(request).recorder
    keep = None if recorder is None else functools.partial(record_exchange, recorder, body)
    return await respond(request, body, [prompt], chat=True, plan=plan, forced=forced, keep=keep)


async def record_exchange(recorder: Recorder, body: protocol.ChatRequest, rid: str,
                          choices: list[dict[str, Any]]) -> None:
    """Store an answered chat completion, in a worker thread. A failure to store is logged and the
    reply still goes out: serving comes first."""
    replies = [{**{key: value for key, value in c["message"].items() if key != "role"},
                "finish_reason": c["finish_reason"]} for c in choices]
    exchange = Exchange(rid, body.model, [m.to_message().to_dict() for m in body.messages], body.tool_dicts,
                        body.model_dump(exclude={"model", "messages", "tools", "stream_options"}, exclude_none=True),
                        replies, body.stream)
    try:
        await asyncio.to_thread(recorder.record, exchange)
    except Exception:
        log.exception("could not record the chat completion %s", rid)


async def feedback(request: "Request") -> dict[str, Any]:
    authorise(request)
    recorder = _settings(request).recorder
    if recorder is None:
        raise ApiError(404, "this server does not record chat completions, so there is nothing to rate: start it "
                       "with `tuneforge serve --record DIR`", "not_found_error", "recording_off")
    body = await parse(request, protocol.FeedbackRequest)
    try:
        seq = await asyncio.to_thread(recorder.add_feedback, body.id, body.rating, body.correction, body.index)
    except UnknownExchange as e:
        raise ApiError(404, f"id: {e}", "not_found_error", "completion_not_found", "id") from None
    except NoSuchChoice as e:
        raise ApiError(422, str(e), "invalid_request_error", "invalid_value", "index") from None
    return {"object": "feedback", "id": seq, "completion_id": body.id, "index": body.index, "rating": body.rating,
            "correction": body.correction is not None}


async def completions(request: "Request"):
    settings = _settings(request)
    body = await parse(request, protocol.CompletionRequest)
    if len(body.prompts) > settings.max_prompts:
        raise ApiError(400, f"prompt: {len(body.prompts)} prompts, this server takes up to {settings.max_prompts} "
                       "per request", "invalid_request_error", "invalid_value", "prompt")
    return await respond(request, body, [settings.engine.encode_text(p) for p in body.prompts], chat=False)


async def respond(request: "Request", body, prompts: list[list[int]], chat: bool, plan: ToolPlan | None = None,
                  forced: int = 0, keep: Keep | None = None):
    """Submit every choice of every prompt, then answer with the whole completion or a stream of it.
    `plan`: tool calls to look for in the replies; `forced`: how many of each prompt's last tokens are
    the forced opening of the reply (`plan.opening`); `keep`: awaited with the id and the whole
    choices once every reply is complete, before the answer (or the stream's end) goes out."""
    engine = _settings(request).engine
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    jobs = [(prompt, j) for prompt in prompts for j in range(body.n)]
    handles: list[Handle] = []
    try:
        # Without max_tokens a reply may use the rest of the context, as with OpenAI's API.
        params = [body.sampling(body.token_limit or max(1, engine.room(prompt, body.model)), k)
                  for k, (prompt, _) in enumerate(jobs)]
        for (prompt, _), p in zip(jobs, params):
            engine.check(prompt, p, body.model)  # every choice fits before any starts
        for k, ((prompt, _), p) in enumerate(zip(jobs, params)):
            handles.append(engine.submit(
                prompt, p, lambda e, k=k: loop.call_soon_threadsafe(events.put_nowait, (k, e)), model=body.model))
    except (UnknownModel, ContextTooLong, EngineBusy, EngineClosed, ValueError) as e:
        for handle in handles:
            handle.cancel()
        raise _engine_error(e) from None
    rid = protocol.new_id("chatcmpl" if chat else "cmpl")
    prompt_tokens = sum(len(p) - forced for p in prompts)
    if body.stream:
        return StreamingResponse(stream(events, handles, body, rid, prompt_tokens, chat, plan, forced, keep),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    done: list[Completion | None] = [None] * len(jobs)

    async def collect() -> None:
        while any(d is None for d in done):
            k, event = await events.get()
            if isinstance(event, Completion):
                done[k] = event

    collector, watcher = asyncio.ensure_future(collect()), asyncio.ensure_future(disconnected(request))
    try:
        await asyncio.wait({collector, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        collector.cancel()
        watcher.cancel()
        for handle in handles:
            handle.cancel()
    if not collector.done() or collector.cancelled():
        log.info("client went away: cancelled %s", rid)
        return JSONResponse({}, status_code=499)
    failed = [d for d in done if d.finish_reason == "error"]
    if failed:
        raise ApiError(500, f"generation failed: {failed[0].error}", "server_error")
    choices = [reply_choice(chat, k, d, plan) for k, d in enumerate(done)]
    if keep is not None:
        await keep(rid, choices)
    return protocol.body(chat, rid, body.model, int(time.time()), choices, chunk=False,
                         usage_=protocol.usage(prompt_tokens, done, forced * len(done)))


def reply_choice(chat: bool, k: int, done: Completion, plan: ToolPlan | None) -> dict[str, Any]:
    """A whole reply as choice `k`: its tool calls (finish reason `tool_calls`, the text outside them
    as content) when it holds calls that parse, else its text."""
    if plan is None:
        return protocol.choice(chat, k, done.text, done.finish_reason, chunk=False)
    text = plan.opening + done.text
    parsed = plan.parse(text)
    if parsed is None:
        return protocol.choice(chat, k, text, done.finish_reason, chunk=False)
    return protocol.choice(chat, k, parsed.content.strip() or None, "tool_calls", chunk=False,
                           tool_calls=call_dicts(parsed.calls))


async def disconnected(request: "Request") -> None:
    """Returns when the client has gone away (the body has been read: only a disconnect can come)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def stream(events: asyncio.Queue, handles: list[Handle], body, rid: str, prompt_tokens: int,
                 chat: bool, plan: ToolPlan | None = None, forced: int = 0,
                 keep: Keep | None = None) -> AsyncIterator[str]:
    """Server-sent events of every choice. With a tool `plan`, a choice's text is sent as far as no call
    can begin in it; the rest waits for the reply's end, then goes out as `tool_calls` deltas (one per
    call, with its `index`) and finish reason `tool_calls`, or as content when it holds no call that parses."""
    def sse(payload: dict[str, Any]) -> str:
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    def chunk(piece: dict[str, Any]) -> str:
        return sse(protocol.body(chat, rid, body.model, created, [piece], chunk=True))

    created = int(time.time())
    finished: list[Completion] = []
    whole: list[dict[str, Any]] = [{}] * len(handles)  # each choice as a non-streamed reply, for `keep`
    texts = [plan.opening if plan else ""] * len(handles)  # each choice's reply so far
    sent = [0] * len(handles)  # how much of it has gone out
    try:
        if chat:  # the first chunk of each choice announces the role
            for k in range(len(handles)):
                yield sse(protocol.body(chat, rid, body.model, created,
                                        [protocol.choice(chat, k, "", None, chunk=True, role=True)], chunk=True))
        while len(finished) < len(handles):
            k, event = await events.get()
            if isinstance(event, Delta) and plan is None:
                yield chunk(protocol.choice(chat, k, event.text, None, chunk=True))
            elif isinstance(event, Delta):
                texts[k] += event.text
                safe = max(sent[k], plan.syntax.safe_prefix(texts[k]))
                if safe > sent[k]:
                    yield chunk(protocol.choice(chat, k, texts[k][sent[k]:safe], None, chunk=True))
                    sent[k] = safe
            elif event.finish_reason == "error":
                yield sse(protocol.error_body(f"generation failed: {event.error}", "server_error"))
                break
            else:
                finished.append(event)
                whole[k] = reply_choice(chat, k, event, plan)
                reason = event.finish_reason
                if plan is not None:
                    text = plan.opening + event.text
                    parsed = plan.parse(text)
                    if parsed is None:
                        rest = text[sent[k]:]
                    else:
                        done_text = text[:sent[k]]
                        rest = parsed.content[sent[k]:] if parsed.content.startswith(done_text) else ""
                        rest = rest if rest.strip() else ""
                    if rest:
                        yield chunk(protocol.choice(chat, k, rest, None, chunk=True))
                    if parsed is not None:
                        yield chunk(protocol.choice(chat, k, None, None, chunk=True,
                                                    tool_calls=call_dicts(parsed.calls, indexed=True)))
                        reason = "tool_calls"
                yield chunk(protocol.choice(chat, k, None if chat else "", reason, chunk=True))
        else:
            if body.include_usage:
                yield sse(protocol.body(chat, rid, body.model, created, [], chunk=True,
                                        usage_=protocol.usage(prompt_tokens, finished, forced * len(finished))))
            if keep is not None:
                await keep(rid, whole)
        yield "data: [DONE]\n\n"
    finally:  # also runs when the client disconnects and the response task is cancelled
        for handle in handles:
            handle.cancel()


def create_app(engine: Engine, *, api_key: str | None = None, max_body_bytes: int = 1 << 20,
               drain_timeout_s: float = 30.0, max_prompts: int = 64, recorder: Recorder | None = None):
    """The FastAPI app: the handlers above on their routes, with `Settings` on `app.state.tuneforge`.
    The app closes `recorder` when it shuts down."""
    if FastAPI is None:
        raise MissingDependency("fastapi", "serve", "the HTTP server")

    @asynccontextmanager
    async def lifespan(app):
        engine.start()
        yield
        # uvicorn has stopped accepting connections and waited for open requests; finish what is left.
        await asyncio.to_thread(engine.close, drain=True, timeout=drain_timeout_s)
        if recorder is not None:
            recorder.close()

    app = FastAPI(title="tuneforge", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tuneforge = Settings(engine, api_key, max_body_bytes, max_prompts, recorder)
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    for error, handler in [(ApiError, api_error), (BodyTooLarge, body_too_large), (HTTPException, http_error),
                           (Exception, unexpected_error)]:
        app.add_exception_handler(error, handler)
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/v1/models", list_models, methods=["GET"])
    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_api_route("/v1/completions", completions, methods=["POST"])
    app.add_api_route("/v1/feedback", feedback, methods=["POST"])
    return app


def serve(engine: Engine, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          max_body_bytes: int = 1 << 20, drain_timeout_s: float = 30.0, max_prompts: int = 64,
          recorder: Recorder | None = None) -> None:
    """Run the server until Ctrl-C / SIGTERM, then shut down gracefully."""
    try:
        import uvicorn
    except ImportError:
        raise MissingDependency("uvicorn", "serve", "the HTTP server") from None
    app = create_app(engine, api_key=api_key, max_body_bytes=max_body_bytes, drain_timeout_s=drain_timeout_s,
                     max_prompts=max_prompts, recorder=recorder)
    uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=drain_timeout_s, log_level="info")
