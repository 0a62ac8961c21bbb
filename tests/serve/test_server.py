"""The OpenAI-compatible server, driven by the official `openai` client over loopback."""

from __future__ import annotations

import threading
import time

import pytest
from tests.serve.conftest import QUESTIONS, REPLIES, running_server

openai = pytest.importorskip("openai", reason="the serve extra is needed: pip install 'tuneforge[serve]'")
httpx = pytest.importorskip("httpx", reason="the serve extra is needed: pip install 'tuneforge[serve]'")

KEY = "test-key-123"


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def ask(c, model: str, question: str = QUESTIONS[0], **kw):
    return c.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                     temperature=0, max_tokens=kw.pop("max_tokens", 24), **kw)


@pytest.fixture
def server(make_engine, adapters):
    engine = make_engine(adapters)
    with running_server(engine) as (url, _):
        yield url, engine


def test_models_lists_the_base_and_each_adapter(server):
    url, _ = server
    models = client(url).models.list()
    assert [m.id for m in models.data] == ["tiny", "alpha", "beta"]
    assert all(m.owned_by == "tuneforge" for m in models.data)


def test_adapter_routing_each_adapter_answers_as_trained(server):
    url, engine = server
    c = client(url)
    for name, reply in REPLIES.items():
        for question in QUESTIONS[:2]:
            out = ask(c, name, question)
            assert out.choices[0].message.content == reply
            assert out.choices[0].finish_reason == "stop"
            assert out.model == name
    base = ask(c, "tiny").choices[0].message.content
    assert base not in REPLIES.values()


def test_usage_counts_prompt_and_generated_tokens(server):
    url, engine = server
    out = ask(client(url), "alpha")
    from tuneforge.types import Message

    prompt = engine.encode_chat([Message("user", QUESTIONS[0])])
    reply_tokens = engine.tokenizer(REPLIES["alpha"], add_special_tokens=False).input_ids
    assert out.usage.prompt_tokens == len(prompt)
    assert out.usage.completion_tokens == len(reply_tokens) + 1  # the reply and its end-of-turn token
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_streaming_chat_gives_the_same_text_in_pieces_and_usage_last(server):
    url, engine = server
    stream = client(url).chat.completions.create(
        model="beta", messages=[{"role": "user", "content": QUESTIONS[1]}], temperature=0, max_tokens=24,
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [ch.choices[0].delta.content for ch in chunks if ch.choices and ch.choices[0].delta.content]
    assert len(pieces) > 2 and "".join(pieces) == REPLIES["beta"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    reply_tokens = len(engine.tokenizer(REPLIES["beta"], add_special_tokens=False).input_ids)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == reply_tokens + 1


def test_stop_max_tokens_n_and_seed(server):
    url, _ = server
    c = client(url)
    assert ask(c, "alpha", stop=[","]).choices[0].message.content == "I am alpha"
    cut = ask(c, "alpha", max_tokens=2)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 2
    sampled = dict(model="tiny", messages=[{"role": "user", "content": "hi"}], temperature=1.0, max_tokens=8, n=3)
    first = c.chat.completions.create(seed=7, **sampled)
    again = c.chat.completions.create(seed=7, **sampled)
    other = c.chat.completions.create(seed=8, **sampled)
    texts = [ch.message.content for ch in first.choices]
    assert len(texts) == 3 and len(set(texts)) == 3  # each choice its own seed
    assert texts == [ch.message.content for ch in again.choices]
    assert texts != [ch.message.content for ch in other.choices]


def test_completions_endpoint_stream_and_not(server):
    url, engine = server
    c = client(url)
    out = c.completions.create(model="tiny", prompt="Once upon a time", max_tokens=5, temperature=0)
    assert out.choices[0].finish_reason == "length" and out.usage.completion_tokens == 5
    assert out.usage.prompt_tokens == len(engine.encode_text("Once upon a time"))
    streamed = c.completions.create(model="tiny", prompt="Once upon a time", max_tokens=5, temperature=0,
                                    stream=True)
    assert "".join(ch.choices[0].text for ch in streamed if ch.choices) == out.choices[0].text


def test_api_key_is_required_when_set(make_engine):
    with running_server(make_engine(), api_key=KEY) as (url, _):
        with pytest.raises(openai.AuthenticationError) as err:
            ask(client(url, "wrong"), "tiny")
        assert err.value.status_code == 401 and err.value.body["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            client(url, "wrong").models.list()
        assert ask(client(url, KEY), "tiny", max_tokens=2).usage.completion_tokens == 2
        assert httpx.get(f"{url}/health").status_code == 200  # health checks need no key


def wait_until(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def error_of(response) -> dict:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_error_cases_get_openai_error_bodies(make_engine):
    engine = make_engine()
    with running_server(engine, max_body_bytes=4096) as (url, _):
        c = client(url)
        with pytest.raises(openai.NotFoundError) as err:
            ask(c, "no-such-model")
        assert err.value.body["code"] == "model_not_found"
        with pytest.raises(openai.BadRequestError) as err:  # prompt + max_tokens beyond the context
            ask(c, "tiny", max_tokens=engine.context_length)
        assert err.value.body["code"] == "context_length_exceeded"
        with pytest.raises(openai.UnprocessableEntityError) as err:
            c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], temperature=5)
        assert err.value.body["param"] == "temperature"

        post = lambda path, **kw: httpx.post(f"{url}{path}", timeout=30, **kw)  # noqa: E731
        bad_json = post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert bad_json.status_code == 400 and error_of(bad_json)["type"] == "invalid_request_error"
        missing = post("/v1/chat/completions", json={"model": "tiny"})
        assert missing.status_code == 422 and error_of(missing)["param"] == "messages"
        big = post("/v1/chat/completions",
                   json={"model": "tiny", "messages": [{"role": "user", "content": "x" * 5000}]})
        assert big.status_code == 413 and error_of(big)["code"] == "request_too_large"

        def chunked():
            for _ in range(10):
                yield b" " * 1000

        big_chunked = post("/v1/completions", content=chunked())
        assert big_chunked.status_code == 413
        assert httpx.get(f"{url}/v1/nowhere").status_code == 404
        assert error_of(httpx.get(f"{url}/v1/nowhere"))["type"] == "not_found_error"
        # A request naming a file is just an unknown model id: nothing on disk is ever opened.
        with pytest.raises(openai.NotFoundError):
            ask(c, "/etc/passwd")


def test_full_queue_gets_429_and_a_closing_engine_503(make_engine):
    engine = make_engine(max_batch_size=1, max_waiting=1)
    with running_server(engine) as (url, _):
        long = {"model": "tiny", "messages": [{"role": "user", "content": "go"}], "max_tokens": 1500,
                "ignore_eos": True, "stream": True}
        with httpx.Client(timeout=60) as h:
            with h.stream("POST", f"{url}/v1/chat/completions", json=long) as first:
                first_lines = first.iter_lines()  # kept: a dropped line iterator closes the response
                next(first_lines)
                wait_until(lambda: engine.load["running"] == 1)
                with h.stream("POST", f"{url}/v1/chat/completions", json=long) as second:
                    second_lines = second.iter_lines()
                    next(second_lines)
                    assert engine.load["waiting"] == 1
                    third = h.post(f"{url}/v1/chat/completions", json={**long, "stream": False})
                    assert third.status_code == 429 and third.headers["retry-after"] == "1"
                    assert error_of(third)["type"] == "rate_limit_error"
        # Both streams were closed by the client: their generations are cancelled, not run to the end.
        deadline = time.monotonic() + 10
        while engine.load != {"waiting": 0, "running": 0}:
            assert time.monotonic() < deadline, engine.load
            time.sleep(0.05)
        engine.close()  # as at shutdown
        refused = httpx.post(f"{url}/v1/chat/completions", json={**long, "stream": False})
        assert refused.status_code == 503 and error_of(refused)["code"] == "shutting_down"
        assert httpx.get(f"{url}/health").status_code == 503


def test_a_client_that_disconnects_cancels_its_generation(make_engine):
    engine = make_engine()
    finished = []
    with running_server(engine) as (url, _):
        body = {"model": "tiny", "messages": [{"role": "user", "content": "go"}], "max_tokens": 1500,
                "ignore_eos": True}
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=0.5)  # the client gives up
        deadline = time.monotonic() + 10
        while engine.load["running"]:
            assert time.monotonic() < deadline, "the abandoned generation kept running"
            time.sleep(0.05)
        finished.append(True)
    assert finished


def test_graceful_shutdown_finishes_running_requests(make_engine):
    engine = make_engine()
    results = {}
    with running_server(engine) as (url, server):
        def call():
            results["reply"] = ask(client(url), "tiny", max_tokens=300, extra_body={"ignore_eos": True})

        caller = threading.Thread(target=call)
        caller.start()
        wait_until(lambda: engine.load["running"] == 1)
        server.should_exit = True  # what SIGTERM does
        caller.join(60)
    assert results["reply"].usage.completion_tokens == 300
    assert engine.closing and engine.load == {"waiting": 0, "running": 0}
