"""The one client for OpenAI-compatible endpoints (tuneforge's own server, vLLM, llama.cpp, Ollama, hosted
APIs) that every part calling an LLM uses: curation's judges, evaluation's judge, data generation.

It gives bounded concurrency (threads: the work is waiting on the network), retries with exponential
backoff and jitter on 429, 5xx, timeouts and broken replies (a `Retry-After` header wins over the
backoff), a per-request timeout, token usage counts, the API key read from an environment variable
(sent as a Bearer token, never logged, never part of an error or of the cache key), and an on-disk SQLite
response cache keyed by a hash of the request (model, messages, sampling settings), so a re-run or a
resumed run never sends a request that was already answered.

Errors name what to fix: a refused key names the environment variable, an unknown model names the model
and the URL, an unreachable endpoint names the URL. `LLMError.fatal` marks those that no other request
can get past, so batch callers stop at once instead of failing every record the same way.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from tuneforge.errors import TuneforgeError

Messages = list[dict[str, Any]]


class LLMError(TuneforgeError):
    """The endpoint did not answer with a chat completion. `fatal`: no other request will fare better
    (refused key, unknown model, unreachable endpoint); `status`: the HTTP status, when there was one."""

    def __init__(self, message: str, *, status: int | None = None, fatal: bool = False):
        super().__init__(message)
        self.status, self.fatal = status, fatal


@dataclass(frozen=True)
class Sampling:
    """Sampling settings sent with a request; None leaves a setting to the server."""

    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int | None = None
    n: int = 1
    seed: int | None = None
    stop: list[str] | None = None
    response_format: dict[str, Any] | None = None
    """e.g. {"type": "json_object"}; for servers that support it (tuneforge serve accepts and ignores it)."""

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"temperature": self.temperature}
        for key in ("top_p", "max_tokens", "seed", "stop", "response_format"):
            if (value := getattr(self, key)) is not None:
                out[key] = value
        if self.n != 1:
            out["n"] = self.n
        return out


@dataclass
class Reply:
    """One chat completion: its choices' texts, finish reasons and token usage."""

    texts: list[str]
    finish_reasons: list[str | None]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""


@dataclass
class Usage:
    """What a client has spent: requests sent, answered from the cache, retried and failed, and tokens."""

    requests: int = 0
    cached: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("requests", "cached", "retries", "failed", "prompt_tokens",
                                              "completion_tokens")}


def request_key(model: str, messages: Messages, params: dict[str, Any]) -> str:
    """The cache key of a request: a hash of what decides the reply (not the URL, not the key)."""
    canonical = json.dumps({"model": model, "messages": messages, "params": params}, sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    """Answered requests by their key, in SQLite (WAL: readers never wait on the writer). Only complete
    replies are stored, so a request that failed is asked again on the next run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, reply TEXT, "
                        "created REAL)")
        self.db.commit()

    def get(self, key: str) -> Reply | None:
        with self.lock:
            row = self.db.execute("SELECT reply FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return Reply(data["texts"], data["finish_reasons"], data["prompt_tokens"], data["completion_tokens"], True)

    def put(self, key: str, model: str, reply: Reply) -> None:
        data = {"texts": reply.texts, "finish_reasons": reply.finish_reasons, "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens}
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                            (key, model, json.dumps(data, ensure_ascii=False), time.time()))
            self.db.commit()

    def __len__(self) -> int:
        with self.lock:
            return int(self.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self.lock:
            self.db.close()


class _Retry(Exception):
    """A failure worth another attempt; `after`: the server's Retry-After in seconds, if it gave one."""

    def __init__(self, message: str, after: float | None = None, status: int | None = None,
                 unreachable: bool = False):
        super().__init__(message)
        self.after, self.status, self.unreachable = after, status, unreachable


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _server_message(body: bytes) -> str:
    """The message of an OpenAI-style error body, or a short piece of whatever came back."""
    try:
        error = json.loads(body).get("error")
        message = error.get("message") if isinstance(error, dict) else error
        return str(message or "")[:300]
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace").strip()[:200]


class LLMClient:
    """Chat completions from one endpoint and model. Thread-safe; `map` runs many with bounded concurrency."""

    def __init__(self, url: str, model: str, *, api_key_env: str | None = "OPENAI_API_KEY",
                 api_key: str | None = None, timeout: float = 60.0, retries: int = 3, concurrency: int = 8,
                 cache: str | Path | ResponseCache | None = None, backoff: float = 0.5, max_backoff: float = 30.0):
        self.url, self.model = url.rstrip("/"), model
        self.api_key_env = api_key_env
        self._key = api_key if api_key is not None else (os.environ.get(api_key_env) if api_key_env else None)
        self.timeout, self.retries, self.concurrency = timeout, retries, max(1, concurrency)
        self.backoff, self.max_backoff = backoff, max_backoff
        self.cache = ResponseCache(cache) if isinstance(cache, (str, Path)) else cache
        self.usage = Usage()
        self._fatal: LLMError | None = None
        self.sleep: Callable[[float], None] = time.sleep  # replaceable, to see the waits without waiting

    def __repr__(self) -> str:  # never the key
        return f"LLMClient({self.url!r}, {self.model!r})"

    def complete(self, messages: Messages, sampling: Sampling = Sampling()) -> Reply:
        """One chat completion, from the cache when this request was answered before. Raises LLMError."""
        params = sampling.params()
        key = request_key(self.model, messages, params)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.usage.add(cached=1)
            return hit
        if self._fatal is not None:  # a refused key or unknown model fails every request the same way
            raise self._fatal
        body = json.dumps({"model": self.model, "messages": messages, **params}).encode()
        attempt = 0
        while True:
            try:
                self.usage.add(requests=1)
                reply = self._send(body)
                break
            except _Retry as e:
                if attempt >= self.retries:
                    self.usage.add(failed=1)
                    error = LLMError(str(e), status=e.status, fatal=e.unreachable)
                    if error.fatal:
                        self._fatal = error
                    raise error from None
                delay = e.after if e.after is not None else self._backoff(attempt)
                attempt += 1
                self.usage.add(retries=1)
                self.sleep(min(delay, self.max_backoff))
            except LLMError as e:
                self.usage.add(failed=1)
                if e.fatal:
                    self._fatal = e
                raise
        self.usage.add(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens)
        if self.cache is not None:
            self.cache.put(key, self.model, reply)
        return reply

    def _backoff(self, attempt: int) -> float:
        # exponential with full jitter: many workers retrying at once spread out instead of hitting together
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** attempt)) + self.backoff / 2

    def _send(self, body: bytes) -> Reply:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(self.url + "/chat/completions", body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            raise self._http_error(e) from None
        except (TimeoutError, http.client.IncompleteRead, http.client.RemoteDisconnected,
                ConnectionResetError) as e:
            raise _Retry(f"request failed: {type(e).__name__} {e}".strip()) from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError):
                raise _Retry(f"request failed: timed out after {self.timeout:g}s") from None
            raise _Retry(f"request failed: cannot reach {self.url} ({e.reason}); is the server running "
                         f"and the URL right?", unreachable=True) from None
        except OSError as e:
            raise _Retry(f"request failed: {e}") from None
        try:
            payload = json.loads(raw)
            choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
            texts = [str(c["message"].get("content") or "") for c in choices]
            usage = payload.get("usage") or {}
            if not texts:
                raise ValueError("no choices")
            return Reply(texts, [c.get("finish_reason") for c in choices], int(usage.get("prompt_tokens") or 0),
                         int(usage.get("completion_tokens") or 0))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            # a truncated or mangled body is a transport failure as far as the caller is concerned
            raise _Retry("request failed: the reply is not a chat completion") from None

    def _http_error(self, e: urllib.error.HTTPError) -> Exception:
        message = _server_message(e.read() or b"")
        detail = f"HTTP {e.code}" + (f": {message}" if message else "")
        if e.code == 429 or e.code >= 500:
            return _Retry(detail, retry_after(e.headers.get("Retry-After")), e.code)
        if e.code in (401, 403):
            where = f"${self.api_key_env}" if self.api_key_env else "the API key"
            hint = f"set {where} to a key that {self.url} accepts" if self._key or not self.api_key_env else \
                f"{where} is not set"
            return LLMError(f"{detail} from {self.url}: the API key was refused ({hint})", status=e.code, fatal=True)
        if e.code == 404:
            return LLMError(f"{detail} from {self.url}: model '{self.model}' is not served there (or the URL is "
                            f"wrong; it should end in /v1); check the model name against {self.url}/models",
                            status=e.code, fatal=True)
        return LLMError(detail, status=e.code)

    def map(self, requests: Iterable[tuple[Messages, Sampling]],
            on_done: Callable[[int, Reply | LLMError], None] | None = None) -> Iterator[tuple[int, Reply | LLMError]]:
        """(index, reply or error) for each request, in completion order, at most `concurrency` in flight.
        A fatal error (refused key, unknown model, unreachable endpoint) is raised once what is in flight
        has finished, so nothing already answered is lost."""
        source = iter(enumerate(requests))
        with ThreadPoolExecutor(self.concurrency) as pool:
            pending: dict[Future, int] = {}

            def fill() -> None:
                while len(pending) < self.concurrency and self._fatal is None:
                    try:
                        i, (messages, sampling) = next(source)
                    except StopIteration:
                        return
                    pending[pool.submit(self.complete, messages, sampling)] = i

            fill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = pending.pop(future)
                    try:
                        result: Reply | LLMError = future.result()
                    except LLMError as e:
                        result = e
                    if on_done is not None:
                        on_done(i, result)
                    yield i, result
                fill()
        if self._fatal is not None:
            raise self._fatal

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


def chat_completion(url: str, model: str, messages: list[dict[str, str]], api_key: str | None = None,
                    timeout: float = 60.0, retries: int = 0) -> str:
    """The reply text of one chat completion (temperature 0) from `POST {url}/chat/completions`, with
    `retries` more attempts after a connection error, a timeout, a 429 or a 5xx. Raises LLMError."""
    client = LLMClient(url, model, api_key_env=None, api_key=api_key, timeout=timeout, retries=retries)
    return client.complete(messages).text


_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


def json_objects(reply: str) -> Iterator[dict[str, Any]]:
    """The JSON objects (dicts) written inside a model's free-text reply, in order: balanced `{...}`
    spans first (nested objects included), then any flat `{...}` a broken outer object still holds."""
    seen = set()
    for start, end in _balanced_spans(reply):
        try:
            obj = json.loads(reply[start:end])
        except ValueError:
            continue
        if isinstance(obj, dict):
            seen.add((start, end))
            yield obj
    for match in _OBJECT.finditer(reply):
        if any(s <= match.start() and match.end() <= e for s, e in seen):
            continue
        try:
            obj = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj


def _balanced_spans(text: str) -> Iterator[tuple[int, int]]:
    """Outermost brace-balanced spans, skipping braces inside JSON strings."""
    depth, start, in_string, escaped = 0, -1, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"' and depth:
            in_string = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                yield start, i + 1
