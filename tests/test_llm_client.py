"""The OpenAI-compatible client against a stub server that counts requests: retries and their waits
(429 + Retry-After, 5xx, timeouts, malformed and truncated bodies), fatal errors that name what to fix
(refused key, unknown model, unreachable endpoint), the response cache, bounded concurrency, usage."""

from __future__ import annotations

import socket

import pytest

from datagen.stub_llm import StubLLM
from tuneforge.errors import TuneforgeError
from tuneforge.llm_client import LLMClient, LLMError, ResponseCache, Sampling, json_objects, retry_after

HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def stub():
    server = StubLLM()
    yield server
    server.close()


def client_for(url: str, waits: list | None = None, **kwargs) -> LLMClient:
    client = LLMClient(url, kwargs.pop("model", "teacher"), **{"backoff": 0.01, **kwargs})
    if waits is not None:
        client.sleep = waits.append
    return client


def test_429_waits_as_long_as_retry_after_says_then_succeeds(stub):
    stub.script = [("status", 429, {"Retry-After": "7"}), ("status", 429, {"Retry-After": "2.5"})]
    waits: list[float] = []
    client = client_for(stub.url, waits, retries=3)
    reply = client.complete(HELLO)
    assert reply.text.startswith("Answer 0") and waits == [7.0, 2.5]
    assert len(stub.received) == 3 and len(stub.answered) == 1
    assert client.usage.as_dict() == {"requests": 3, "cached": 0, "retries": 2, "failed": 0, "prompt_tokens": 10,
                                      "completion_tokens": 5}


def test_5xx_backs_off_exponentially_with_jitter_and_gives_up_after_the_retries(stub):
    stub.script = [("status", 500), ("status", 502), ("status", 503)]
    waits: list[float] = []
    client = client_for(stub.url, waits, retries=2, backoff=1.0, max_backoff=30)
    with pytest.raises(LLMError, match="HTTP 503: overloaded") as e:
        client.complete(HELLO)
    assert not e.value.fatal and e.value.status == 503
    assert len(stub.received) == 3 and len(waits) == 2
    assert 0.5 <= waits[0] <= 1.5 and 0.5 <= waits[1] <= 2.5  # uniform(0, backoff * 2**attempt) + backoff / 2
    assert client.usage.failed == 1


def test_a_timeout_is_retried(stub):
    stub.script = [("hang", 1.0)]
    client = client_for(stub.url, [], retries=1, timeout=0.3)
    assert client.complete(HELLO).text.startswith("Answer 0")
    assert len(stub.received) == 2 and client.usage.retries == 1


@pytest.mark.parametrize("fault", ["malformed", "truncated"])
def test_malformed_and_truncated_bodies_are_retried_then_reported(stub, fault):
    stub.script = [(fault,)]
    assert client_for(stub.url, [], retries=1).complete(HELLO).text.startswith("Answer 0")
    assert len(stub.received) == 2
    stub.script = [(fault,), (fault,)]
    with pytest.raises(LLMError, match="request failed"):
        client_for(stub.url, [], retries=1).complete([{"role": "user", "content": "other"}])


def test_a_refused_key_names_the_variable_never_the_key_and_stops_asking(monkeypatch):
    server = StubLLM(api_key="right-key")
    try:
        monkeypatch.setenv("MY_TEACHER_KEY", "sk-wrong-secret")
        client = client_for(server.url, [], api_key_env="MY_TEACHER_KEY", retries=3)
        with pytest.raises(LLMError) as e:
            client.complete(HELLO)
        message = str(e.value)
        assert e.value.fatal and e.value.status == 401 and isinstance(e.value, TuneforgeError)
        assert "$MY_TEACHER_KEY" in message and server.url in message and "sk-wrong" not in message
        assert "sk-wrong" not in repr(client)
        with pytest.raises(LLMError):
            client.complete([{"role": "user", "content": "another"}])
        assert len(server.received) == 1  # not retried, and nothing more is sent after a refused key
        monkeypatch.delenv("MY_TEACHER_KEY")
        with pytest.raises(LLMError, match=r"\$MY_TEACHER_KEY is not set"):
            client_for(server.url, [], api_key_env="MY_TEACHER_KEY").complete(HELLO)
        monkeypatch.setenv("MY_TEACHER_KEY", "right-key")
        assert client_for(server.url, [], api_key_env="MY_TEACHER_KEY").complete(HELLO).text
    finally:
        server.close()


def test_an_unknown_model_names_the_model_and_the_url(stub):
    with pytest.raises(LLMError) as e:
        client_for(stub.url, [], model="gpt-7").complete(HELLO)
    assert e.value.fatal and "model 'gpt-7' is not served" in str(e.value) and stub.url in str(e.value)


def test_an_unreachable_endpoint_names_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free: nothing listens once the socket closes
    url = f"http://127.0.0.1:{port}/v1"
    client = client_for(url, [], retries=1)
    with pytest.raises(LLMError, match=f"cannot reach {url}") as e:
        client.complete(HELLO)
    assert e.value.fatal and client.usage.requests == 2


def test_the_cache_answers_a_repeated_request_without_sending_it(stub, tmp_path):
    path = tmp_path / "cache.sqlite"
    client = client_for(stub.url, api_key="sk-secret-key", cache=path)
    first = client.complete(HELLO, Sampling(temperature=0.7, seed=3, max_tokens=20))
    again = client.complete(HELLO, Sampling(temperature=0.7, seed=3, max_tokens=20))
    assert (again.text, again.cached, first.cached) == (first.text, True, False)
    client.complete(HELLO, Sampling(temperature=0.7, seed=4, max_tokens=20))  # other settings: another request
    assert len(stub.received) == 2 and client.usage.cached == 1
    client.close()
    # a new process (a resumed run) with another key reuses the replies; the key is stored nowhere
    other = client_for(stub.url, api_key="sk-another", cache=path)
    assert other.complete(HELLO, Sampling(temperature=0.7, seed=3, max_tokens=20)).text == first.text
    assert len(stub.received) == 2 and len(ResponseCache(path)) == 2
    assert b"sk-secret" not in path.read_bytes()


def test_map_keeps_at_most_concurrency_requests_in_flight_and_counts_tokens(stub):
    stub.delay = 0.1
    client = client_for(stub.url, concurrency=4)
    results = dict(client.map(([{"role": "user", "content": f"q{i}"}], Sampling()) for i in range(12)))
    assert sorted(results) == list(range(12)) and all(r.text for r in results.values())
    assert stub.max_inflight == 4
    assert (client.usage.prompt_tokens, client.usage.completion_tokens) == (120, 60)


def test_map_reports_a_failed_request_and_raises_a_fatal_one_after_the_others(stub):
    stub.script = [("status", 400)]
    results = dict(client_for(stub.url, concurrency=1).map([(HELLO, Sampling()), (HELLO, Sampling(seed=1))]))
    assert isinstance(results[0], LLMError) and results[1].text
    with pytest.raises(LLMError, match="not served"):
        list(client_for(stub.url, model="nope").map([(HELLO, Sampling())] * 3))


@pytest.mark.parametrize("value, seconds", [("3", 3.0), ("0.5", 0.5), ("soon", None), (None, None),
                                            ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_retry_after(value, seconds):
    assert retry_after(value) == seconds


def test_json_objects_reads_nested_objects_and_skips_broken_ones():
    reply = 'Here: {"a": {"b": [1, 2]}, "s": "}"} and {"c": 1} but {"broken": '
    assert list(json_objects(reply)) == [{"a": {"b": [1, 2]}, "s": "}"}, {"c": 1}]
