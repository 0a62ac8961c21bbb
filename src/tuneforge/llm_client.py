"""The one client for OpenAI-compatible endpoints (vLLM, llama.cpp, tuneforge's own server, hosted
APIs) that curation's LLM judge and evaluation's judge both call, and the lenient reading of the JSON a
model writes into its free-text reply."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any


class LLMError(Exception):
    """The endpoint did not answer with a chat completion."""


def chat_completion(url: str, model: str, messages: list[dict[str, str]], api_key: str | None = None,
                    timeout: float = 60.0, retries: int = 0) -> str:
    """The reply text of one chat completion (temperature 0) from `POST {url}/chat/completions`.
    `retries` more attempts follow a connection error, a timeout or a 5xx; a 4xx or a reply that is
    not a chat completion fails at once. Raises LLMError naming what went wrong."""
    body = json.dumps({"model": model, "messages": messages, "temperature": 0}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    request = urllib.request.Request(url.rstrip("/") + "/chat/completions", body, headers, method="POST")
    for _ in range(retries + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload: Any = json.loads(response.read())
            return str(payload["choices"][0]["message"]["content"] or "")
        except urllib.error.HTTPError as e:
            error = f"HTTP {e.code}"
            if e.code < 500:  # a bad request or key will not get better by asking again
                break
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            error = f"request failed: {getattr(e, 'reason', e)}"
        except (ValueError, KeyError, IndexError, TypeError):
            error = "the reply is not a chat completion"
            break
    raise LLMError(error)


_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


def json_objects(reply: str) -> Iterator[dict[str, Any]]:
    """The JSON objects (dicts) written inside a model's free-text reply, in order."""
    for candidate in _OBJECT.findall(reply):
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj
