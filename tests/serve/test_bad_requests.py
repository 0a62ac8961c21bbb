"""Every kind of bad request a fault campaign sent the server, as one table: each gets its 4xx with an
OpenAI-style error body, and the server stays healthy (it still answers /health and a normal chat)."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from tests.serve.conftest import running_server

httpx = pytest.importorskip("httpx", reason="the serve extra is needed: pip install 'tuneforge[serve]'")

CHAT, TEXT = "/v1/chat/completions", "/v1/completions"
MAX_PROMPTS = 8
OK = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
OK_TEXT = {"model": "tiny", "prompt": "Once", "max_tokens": 2}


ADD = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}


def chat(**fields) -> dict:
    return {**OK, **fields}


def text(**fields) -> dict:
    return {**OK_TEXT, **fields}


def said(message: dict) -> dict:
    return chat(messages=[{"role": "user", "content": "hi"}, message, {"role": "user", "content": "go on"}])


def raw(template: str) -> bytes:
    """A body with JSON Python's json module would never write (NaN, lone surrogates): spliced in."""
    return template.encode()


def nested(depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return raw('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "x": '
               + opener * depth + closer * depth + "}")


def chunks(total: int):
    for _ in range(total // 4096):
        yield b" " * 4096


class Bad(NamedTuple):
    name: str
    path: str
    body: dict | bytes | object
    status: int
    expect: str
    """The error's `param` (`param=...`), `code` (`code=...`) or a piece of its message."""
    method: str = "POST"
    headers: dict | None = None


BAD = [
    # The body itself
    Bad("invalid_json", CHAT, b"{not json", 400, "not valid JSON"),
    Bad("empty_body", CHAT, b"", 400, "not valid JSON"),
    Bad("body_is_a_list", CHAT, b"[1, 2]", 400, "must be a JSON object"),
    Bad("body_is_a_string", CHAT, b'"hi"', 400, "must be a JSON object"),
    Bad("body_is_null", CHAT, b"null", 400, "must be a JSON object"),
    Bad("invalid_utf8", CHAT, b'{"model": "tiny", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400,
        "not valid JSON"),
    Bad("form_encoded_body", CHAT, b"model=tiny&messages=hi", 400, "not valid JSON",
        headers={"content-type": "application/x-www-form-urlencoded"}),
    Bad("integer_of_5000_digits", CHAT, raw('{"model": "tiny", "messages": [], "seed": ' + "9" * 5000 + "}"), 400,
        "not valid JSON"),
    Bad("nested_arrays_100000", CHAT, nested(100_000), 400, "nested"),
    Bad("nested_objects_100000", CHAT, nested(100_000, '{"a":', "}"), 400, "nested"),
    Bad("nested_arrays_200", CHAT, nested(200), 400, "param=x"),
    Bad("body_over_the_limit", CHAT, chat(messages=[{"role": "user", "content": "x" * (1 << 20)}]), 413,
        "code=request_too_large"),
    Bad("chunked_body_over_the_limit", TEXT, chunks(1 << 21), 413, "code=request_too_large"),
    Bad("lone_surrogate_in_content", CHAT, raw('{"model": "tiny", "messages": [{"role": "user", "content": '
                                               '"a\\ud800b"}]}'), 400, "param=messages.0.content"),
    Bad("lone_surrogate_in_a_content_part", CHAT, raw('{"model": "tiny", "messages": [{"role": "user", "content": '
                                                      '[{"type": "text", "text": "\\udfff"}]}]}'), 400,
        "param=messages.0.content.0.text"),
    Bad("lone_surrogate_in_model", CHAT, raw('{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}'),
        400, "param=model"),
    Bad("lone_surrogate_in_a_key", CHAT, raw('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], '
                                             '"\\ud800": 1}'), 400, "surrogate"),
    Bad("lone_surrogate_in_prompt", TEXT, raw('{"model": "tiny", "prompt": ["ok", "\\ud83d"]}'), 400, "param=prompt.1"),
    Bad("lone_surrogate_in_stop", CHAT, raw('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], '
                                            '"stop": "\\udc00"}'), 400, "param=stop"),
    # Routes and methods
    Bad("unknown_route", "/v1/nowhere", OK, 404, "Not Found"),
    Bad("embeddings_not_served", "/v1/embeddings", {"model": "tiny", "input": "hi"}, 404, "Not Found"),
    Bad("get_on_a_post_route", CHAT, None, 405, "Method Not Allowed", method="GET"),
    Bad("put_on_models", "/v1/models", None, 405, "Method Not Allowed", method="PUT"),
    # The model
    Bad("missing_model", CHAT, {"messages": OK["messages"]}, 422, "param=model"),
    Bad("model_not_a_string", CHAT, chat(model=7), 422, "param=model"),
    Bad("unknown_model", CHAT, chat(model="no-such-model"), 404, "code=model_not_found"),
    Bad("model_names_a_file", CHAT, chat(model="/etc/passwd"), 404, "code=model_not_found"),
    Bad("unknown_model_completions", TEXT, text(model="../tiny"), 404, "code=model_not_found"),
    # Messages
    Bad("missing_messages", CHAT, {"model": "tiny"}, 422, "param=messages"),
    Bad("empty_messages", CHAT, chat(messages=[]), 422, "param=messages"),
    Bad("messages_not_a_list", CHAT, chat(messages="hi"), 422, "param=messages"),
    Bad("message_is_null", CHAT, chat(messages=[None]), 422, "param=messages.0"),
    Bad("message_without_role", CHAT, chat(messages=[{"content": "hi"}]), 422, "param=messages.0.role"),
    Bad("unknown_role", CHAT, chat(messages=[{"role": "wizard", "content": "hi"}]), 422, "param=messages.0.role"),
    Bad("content_not_text", CHAT, chat(messages=[{"role": "user", "content": 42}]), 422, "param=messages.0.content"),
    Bad("content_part_of_unknown_type", CHAT, chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]), 422, "param=messages.0.content"),
    Bad("content_part_without_text", CHAT, chat(messages=[{"role": "user", "content": [{"type": "text"}]}]), 422,
        "param=messages.0.content"),
    Bad("name_not_a_string", CHAT, chat(messages=[{"role": "user", "content": "hi", "name": ["x"]}]), 422,
        "param=messages.0.name"),
    # Tool calls and tools
    Bad("tool_call_without_function_name", CHAT, said({"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"arguments": "{}"}}]}), 422,
        "param=messages.1.tool_calls.0.function.name"),
    Bad("tool_call_without_function", CHAT, said({"role": "assistant", "tool_calls": [{"id": "c1"}]}), 422,
        "param=messages.1.tool_calls.0.function"),
    Bad("tool_call_name_not_a_string", CHAT, said({"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": 3, "arguments": "{}"}}]}), 422,
        "param=messages.1.tool_calls.0.function.name"),
    Bad("tool_call_arguments_a_number", CHAT, said({"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": 3}}]}), 422,
        "param=messages.1.tool_calls.0.function.arguments"),
    Bad("tool_calls_not_a_list", CHAT, said({"role": "assistant", "tool_calls": "f()"}), 422,
        "param=messages.1.tool_calls"),
    Bad("tool_call_of_unknown_type", CHAT, said({"role": "assistant", "tool_calls": [
        {"type": "shell", "function": {"name": "f"}}]}), 422, "param=messages.1.tool_calls.0.type"),
    Bad("tool_without_function", CHAT, chat(tools=[{"type": "function"}]), 422, "param=tools.0.function"),
    Bad("tool_without_name", CHAT, chat(tools=[{"type": "function", "function": {"parameters": {}}}]), 422,
        "param=tools.0.function.name"),
    Bad("tools_not_a_list", CHAT, chat(tools={"type": "function"}), 422, "param=tools"),
    Bad("tool_choice_unknown_word", CHAT, chat(tools=[ADD], tool_choice="always"), 422, "param=tool_choice"),
    Bad("tool_choice_names_no_tool", CHAT, chat(tools=[ADD], tool_choice={
        "type": "function", "function": {"name": "sub"}}), 422, "param=tool_choice.function.name"),
    Bad("tool_choice_without_name", CHAT, chat(tools=[ADD], tool_choice={"type": "function", "function": {}}), 422,
        "param=tool_choice.function.name"),
    Bad("tool_choice_of_unknown_type", CHAT, chat(tools=[ADD], tool_choice={
        "type": "shell", "function": {"name": "add"}}), 422, "param=tool_choice.type"),
    Bad("tool_choice_a_number", CHAT, chat(tools=[ADD], tool_choice=3), 422, "param=tool_choice"),
    Bad("tool_choice_required_without_tools", CHAT, chat(tool_choice="required"), 422, "param=tool_choice"),
    Bad("tool_defined_twice", CHAT, chat(tools=[ADD, ADD]), 422, "param=tools"),
    Bad("tool_parameters_not_an_object", CHAT, chat(tools=[{"type": "function", "function": {
        "name": "f", "parameters": "x"}}]), 422, "param=tools.0.function.parameters"),
    Bad("template_refuses_the_conversation", CHAT, chat(messages=[
        {"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]), 400, "param=messages"),
    # Sampling settings
    Bad("temperature_too_high", CHAT, chat(temperature=5), 422, "param=temperature"),
    Bad("temperature_negative", CHAT, chat(temperature=-1), 422, "param=temperature"),
    Bad("temperature_not_a_number", CHAT, chat(temperature="hot"), 422, "param=temperature"),
    Bad("temperature_nan", CHAT, raw('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], '
                                     '"temperature": NaN}'), 422, "param=temperature"),
    Bad("top_p_zero", CHAT, chat(top_p=0), 422, "param=top_p"),
    Bad("top_p_over_one", CHAT, chat(top_p=1.5), 422, "param=top_p"),
    Bad("top_p_overflows_to_infinity", CHAT, raw('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], '
                                                 '"top_p": 1e400}'), 422, "param=top_p"),
    Bad("top_k_negative", CHAT, chat(top_k=-1), 422, "param=top_k"),
    Bad("top_k_beyond_int64", CHAT, chat(top_k=10**30), 422, "param=top_k"),
    Bad("repetition_penalty_zero", CHAT, chat(repetition_penalty=0), 422, "param=repetition_penalty"),
    Bad("repetition_penalty_infinity", CHAT, raw('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], '
                                                 '"repetition_penalty": Infinity}'), 422, "param=repetition_penalty"),
    Bad("repetition_penalty_minus_infinity", CHAT, raw('{"model": "tiny", "messages": [{"role": "user", "content": '
                                                       '"hi"}], "repetition_penalty": -Infinity}'), 422,
        "param=repetition_penalty"),
    Bad("repetition_penalty_nan", CHAT, raw('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], '
                                            '"repetition_penalty": NaN}'), 422, "param=repetition_penalty"),
    Bad("repetition_penalty_nan_completions", TEXT, raw('{"model": "tiny", "prompt": "x", "repetition_penalty": NaN}'),
        422, "param=repetition_penalty"),
    Bad("max_tokens_zero", CHAT, chat(max_tokens=0), 422, "param=max_tokens"),
    Bad("max_tokens_negative", CHAT, chat(max_tokens=-5), 422, "param=max_tokens"),
    Bad("max_tokens_not_a_number", CHAT, chat(max_tokens="ten"), 422, "param=max_tokens"),
    Bad("max_tokens_fractional", CHAT, chat(max_tokens=1.5), 422, "param=max_tokens"),
    Bad("max_tokens_beyond_the_context", CHAT, chat(max_tokens=4096), 400, "code=context_length_exceeded"),
    Bad("max_tokens_of_31_digits", CHAT, chat(max_tokens=10**30), 400, "code=context_length_exceeded"),
    Bad("max_completion_tokens_zero", CHAT, chat(max_completion_tokens=0), 422, "param=max_completion_tokens"),
    Bad("n_zero", CHAT, chat(n=0), 422, "param=n"),
    Bad("n_too_many", CHAT, chat(n=17), 422, "param=n"),
    Bad("stop_list_too_long", CHAT, chat(stop=["a", "b", "c", "d", "e"]), 422, "param=stop"),
    Bad("stop_empty_string", CHAT, chat(stop=[""]), 422, "param=stop"),
    Bad("stop_not_text", CHAT, chat(stop=3), 422, "param=stop"),
    Bad("seed_not_an_integer", CHAT, chat(seed="x"), 422, "param=seed"),
    Bad("seed_beyond_int64", CHAT, chat(seed=2**70), 422, "param=seed"),
    Bad("stream_not_a_bool", CHAT, chat(stream="maybe"), 422, "param=stream"),
    Bad("stream_options_not_an_object", CHAT, chat(stream=True, stream_options="usage"), 422,
        "param=stream_options"),
    Bad("ignore_eos_not_a_bool", CHAT, chat(ignore_eos=[]), 422, "param=ignore_eos"),
    # /v1/completions
    Bad("missing_prompt", TEXT, {"model": "tiny"}, 422, "param=prompt"),
    Bad("prompt_not_text", TEXT, text(prompt=5), 422, "param=prompt"),
    Bad("prompt_as_token_ids", TEXT, text(prompt=[[1, 2, 3]]), 422, "param=prompt"),
    Bad("no_prompts", TEXT, text(prompt=[]), 422, "param=prompt"),
    Bad("too_many_prompts", TEXT, text(prompt=["x"] * (MAX_PROMPTS + 1)), 400, "param=prompt"),
    Bad("completions_max_tokens_zero", TEXT, text(max_tokens=0), 422, "param=max_tokens"),
    Bad("completions_prompt_beyond_the_context", TEXT, text(prompt="word " * 3000), 400,
        "code=context_length_exceeded"),
]


@pytest.fixture(scope="module")
def server(tiny_dir):
    from tuneforge.serve.engine import load_engine

    engine = load_engine(str(tiny_dir), model_id="tiny", template="chatml")  # a built-in: it refuses some orders
    try:
        with running_server(engine, max_body_bytes=1 << 20, max_prompts=MAX_PROMPTS) as (url, _):
            with httpx.Client(base_url=url, timeout=60) as client:
                yield client
    finally:
        engine.close(drain=False)


def send(client, bad: Bad):
    if bad.body is None:
        return client.request(bad.method, bad.path)
    if isinstance(bad.body, dict):
        return client.request(bad.method, bad.path, json=bad.body)
    headers = bad.headers or {"content-type": "application/json"}
    return client.request(bad.method, bad.path, content=bad.body, headers=headers)


def test_the_table_holds_every_kind_once():
    assert len(BAD) >= 54
    assert len({bad.name for bad in BAD}) == len(BAD)


@pytest.mark.parametrize("bad", BAD, ids=[bad.name for bad in BAD])
def test_bad_request_gets_its_4xx_with_an_openai_error_body(server, bad):
    response = send(server, bad)
    assert response.status_code == bad.status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == ("not_found_error" if bad.status == 404 else "invalid_request_error")
    key, sep, value = bad.expect.partition("=")
    if sep and key in ("param", "code"):
        assert error[key] == value, error
    else:
        assert bad.expect in error["message"], error
    assert server.get("/health").status_code == 200


def test_the_server_is_healthy_after_every_bad_request(server):
    for bad in BAD:
        assert send(server, bad).status_code < 500, bad.name
    health = server.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["running"] == 0 and health.json()["waiting"] == 0
    reply = server.post(CHAT, json=OK)
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 2
    tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {
        "a": {"type": "integer"}}}, "strict": True}}
    with_tools = said({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}]})
    with_tools["messages"].insert(2, {"role": "tool", "tool_call_id": "c1", "content": "1"})
    assert server.post(CHAT, json={**with_tools, "tools": [tool]}).status_code == 200
    assert server.post(TEXT, json=text(prompt=["a"] * MAX_PROMPTS)).status_code == 200
