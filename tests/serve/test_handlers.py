"""The server's route handlers are plain functions of a request: each can be called on its own."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

pytest.importorskip("fastapi", reason="the serve extra is needed: pip install 'tuneforge[serve]'")

from starlette.requests import Request  # noqa: E402

from tuneforge.serve import protocol, server  # noqa: E402


def request(settings: server.Settings, body: bytes = b"", headers: dict[str, str] | None = None) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(tuneforge=settings))
    scope = {"type": "http", "method": "POST", "path": "/", "app": app,
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    sent = iter([{"type": "http.request", "body": body, "more_body": False}])
    return Request(scope, receive=lambda: asyncio.sleep(0, next(sent)))


class FakeEngine:
    closing, model_ids, load = False, ["base", "alpha"], {"running": 0, "waiting": 0}


def settings(api_key: str | None = None) -> server.Settings:
    return server.Settings(FakeEngine(), api_key, max_body_bytes=1024, max_prompts=2)  # type: ignore[arg-type]


def test_health_and_models_handlers():
    reply = asyncio.run(server.health(request(settings())))
    assert reply.status_code == 200 and json.loads(reply.body)["models"] == ["base", "alpha"]
    listed = asyncio.run(server.list_models(request(settings())))
    assert [m["id"] for m in listed["data"]] == ["base", "alpha"] and listed["data"][1]["parent"] == "base"


def test_authorise_takes_the_bearer_key_only():
    server.authorise(request(settings("k"), headers={"Authorization": "Bearer k"}))
    with pytest.raises(server.ApiError) as err:
        server.authorise(request(settings("k"), headers={"Authorization": "Bearer nope"}))
    assert err.value.status == 401 and err.value.body["error"]["code"] == "invalid_api_key"


def test_parse_names_the_bad_field():
    body = json.dumps({"model": "base", "messages": [{"role": "user", "content": "hi"}], "temperature": -1}).encode()
    with pytest.raises(server.ApiError) as err:
        asyncio.run(server.parse(request(settings(), body), protocol.ChatRequest))
    assert err.value.status == 422 and err.value.body["error"]["param"] == "temperature"


def test_completions_refuses_more_prompts_than_allowed():
    body = json.dumps({"model": "base", "prompt": ["a", "b", "c"]}).encode()
    with pytest.raises(server.ApiError) as err:
        asyncio.run(server.completions(request(settings(), body)))
    assert err.value.status == 400 and err.value.body["error"]["param"] == "prompt"
