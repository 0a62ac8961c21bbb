"""Tool calling through the server, read by the official `openai` client: replies shaped from a fake
engine's scripted text (a random model writes no calls), and the forced opening of `tool_choice`
through the real engine on the tiny model."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from tests.serve.conftest import running_server

from tuneforge.serve.engine import Completion, Delta, Handle

openai = pytest.importorskip("openai", reason="the serve extra is needed: pip install 'tuneforge[serve]'")
httpx = pytest.importorskip("httpx", reason="the serve extra is needed: pip install 'tuneforge[serve]'")

ADD = {"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}
ASK = [{"role": "user", "content": "What is 1 + 2?"}]


def hermes(name: str, arguments: dict) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": arguments})}\n</tool_call>'


class ScriptedEngine:
    """Enough of `Engine` for the server: every request is answered with `reply`, in small deltas."""

    closing, load = False, {"running": 0, "waiting": 0}
    model_ids = ["fake"]

    def __init__(self, tokenizer, template: str, reply: str):
        from tuneforge.formatting import load_template

        self.tokenizer, self.template, self.reply = tokenizer, load_template(template, tokenizer), reply
        self.prompts: list[list[int]] = []
        self.tools: list = []

    def start(self) -> None:
        pass

    def close(self, **_) -> None:
        pass

    def chat_template(self, model=None):
        return self.template

    def encode_chat(self, messages, tools=None, *, model=None) -> list[int]:
        self.tools.append(tools)
        return [1, 2, 3]

    def room(self, prompt, model=None) -> int:
        return 100

    def check(self, prompt, params, model=None):
        return None

    def submit(self, prompt, params, sink, *, model=None) -> Handle:
        self.prompts.append(list(prompt))
        for i in range(0, len(self.reply), 5):
            sink(Delta(self.reply[i:i + 5]))
        sink(Completion(self.reply, "stop", len(prompt), 7))
        return Handle()


@pytest.fixture
def scripted(tokenizer):
    def serve(reply: str, template: str = "chatml"):
        engine = ScriptedEngine(tokenizer, template, reply)
        return engine, running_server(engine)

    return serve


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


def chat(url: str, **kw):
    return client(url).chat.completions.create(model="fake", messages=ASK, **kw)


def test_calls_and_text_come_back_as_tool_calls(scripted):
    engine, server = scripted("Let me compute.\n" + hermes("add", {"a": 1, "b": 2}) + "\n"
                              + hermes("weather", {"city": "Paris"}))
    with server as (url, _):
        out = chat(url, tools=[ADD, WEATHER])
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me compute."
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["add", "weather"]
    assert json.loads(calls[0].function.arguments) == {"a": 1, "b": 2}
    assert all(c.type == "function" and c.id.startswith("call_") for c in calls)
    assert len({c.id for c in calls}) == 2
    assert engine.tools == [[ADD, WEATHER]]  # rendered with the template


def test_a_reply_that_is_only_a_call_has_no_content(scripted):
    _, server = scripted(hermes("add", {"a": 1}))
    with server as (url, _):
        out = chat(url, tools=[ADD], tool_choice="auto")
    assert out.choices[0].message.content is None and out.choices[0].finish_reason == "tool_calls"
    assert out.choices[0].message.tool_calls[0].function.arguments == '{"a": 1}'


def test_llama3_template_calls(scripted):
    _, server = scripted('{"name": "weather", "parameters": {"city": "Oslo"}}', template="llama3")
    with server as (url, _):
        out = chat(url, tools=[ADD, WEATHER])
    [call] = out.choices[0].message.tool_calls
    assert call.function.name == "weather" and json.loads(call.function.arguments) == {"city": "Oslo"}


def test_mistral_template_calls(scripted):
    _, server = scripted('[TOOL_CALLS] [{"name": "weather", "arguments": {"city": "Oslo"}}, '
                         '{"name": "add", "arguments": {"a": 2}}]', template="mistral")
    with server as (url, _):
        out = chat(url, tools=[ADD, WEATHER])
    assert out.choices[0].finish_reason == "tool_calls" and out.choices[0].message.content is None
    assert [(c.function.name, json.loads(c.function.arguments)) for c in out.choices[0].message.tool_calls] == [
        ("weather", {"city": "Oslo"}), ("add", {"a": 2})]


@pytest.mark.parametrize("reply", [
    '<tool_call>\n{"name": "add", "arguments": {"a": 1}\n</tool_call>',  # bad JSON
    hermes("delete_everything", {}),  # not one of the tools
])
def test_a_call_that_does_not_parse_stays_text(scripted, reply):
    engine, server = scripted(reply)
    with server as (url, _):
        out = chat(url, tools=[ADD])
        streamed = list(client(url).chat.completions.create(model="fake", messages=ASK, tools=[ADD], stream=True))
        engine.reply = hermes("add", {"a": 1})  # the same server parses a well-formed call
        assert chat(url, tools=[ADD]).choices[0].message.tool_calls[0].function.name == "add"
    assert out.choices[0].message.content == reply and not out.choices[0].message.tool_calls
    assert out.choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == reply and not any(c.choices[0].delta.tool_calls for c in streamed if c.choices)
    assert [c.choices[0].finish_reason for c in streamed if c.choices][-1] == "stop"


def test_tool_choice_none_gets_no_calls(scripted):
    reply = hermes("add", {"a": 1})
    _, server = scripted(reply)
    with server as (url, _):
        out = chat(url, tools=[ADD], tool_choice="none")
        streamed = list(client(url).chat.completions.create(model="fake", messages=ASK, tools=[ADD],
                                                            tool_choice="none", stream=True))
        assert chat(url, tools=[ADD]).choices[0].finish_reason == "tool_calls"  # under auto it is a call
    assert out.choices[0].message.content == reply and out.choices[0].message.tool_calls is None
    assert out.choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == reply
    assert not any(c.choices[0].delta.tool_calls for c in streamed if c.choices)


def test_without_tools_a_call_shaped_reply_is_text(scripted):
    reply = hermes("add", {"a": 1})
    _, server = scripted(reply)
    with server as (url, _):
        out = chat(url)
        assert chat(url, tools=[ADD]).choices[0].finish_reason == "tool_calls"
    assert out.choices[0].message.content == reply and out.choices[0].finish_reason == "stop"


def test_streaming_sends_text_then_tool_call_deltas_then_finish_reason(scripted):
    _, server = scripted("Checking a < b first. " + hermes("add", {"a": 1}) + hermes("weather", {"city": "Rome"}))
    with server as (url, _):
        chunks = list(client(url).chat.completions.create(
            model="fake", messages=ASK, tools=[ADD, WEATHER], stream=True, stream_options={"include_usage": True}))
    choices = [c.choices[0] for c in chunks if c.choices]
    text = "".join(ch.delta.content or "" for ch in choices)
    assert text == "Checking a < b first. "
    assert sum(1 for ch in choices if ch.delta.content) > 1  # the text streamed before the call began
    deltas = [d for ch in choices for d in ch.delta.tool_calls or []]
    assert [(d.index, d.function.name) for d in deltas] == [(0, "add"), (1, "weather")]
    assert json.loads(deltas[1].function.arguments) == {"city": "Rome"}
    assert all(d.id.startswith("call_") and d.type == "function" for d in deltas)
    assert choices[-1].finish_reason == "tool_calls" and all(ch.finish_reason is None for ch in choices[:-1])
    assert chunks[-1].usage.completion_tokens == 7


def test_streamed_chunks_accumulate_with_the_openai_client(scripted):
    _, server = scripted(hermes("add", {"a": 2, "b": 3}))
    with server as (url, _):
        with client(url).chat.completions.stream(model="fake", messages=ASK, tools=[ADD]) as stream:
            for _event in stream:
                pass
            final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls
    assert call.function.name == "add" and json.loads(call.function.arguments) == {"a": 2, "b": 3}
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "add"}}])
def test_required_or_named_forces_the_opening_of_the_call(scripted, tokenizer, tool_choice):
    # The engine is fed the opening with the prompt and continues after it.
    engine, server = scripted('{"a": 4}}\n</tool_call>')
    tools = [ADD] if tool_choice == "required" else [ADD, WEATHER]
    with server as (url, _):
        out = chat(url, tools=tools, tool_choice=tool_choice)
    opening = tokenizer('<tool_call>\n{"name": "add", "arguments": ', add_special_tokens=False).input_ids
    assert engine.prompts == [[1, 2, 3, *opening]]
    [call] = out.choices[0].message.tool_calls
    assert call.function.name == "add" and call.function.arguments == '{"a": 4}'
    assert out.choices[0].finish_reason == "tool_calls"
    assert out.usage.prompt_tokens == 3 and out.usage.completion_tokens == 7 + len(opening)


def test_required_with_several_tools_forces_the_name_to_follow(scripted, tokenizer):
    engine, server = scripted('weather", "arguments": {"city": "Lima"}}\n</tool_call>')
    with server as (url, _):
        chunks = list(client(url).chat.completions.create(model="fake", messages=ASK, tools=[ADD, WEATHER],
                                                          tool_choice="required", stream=True))
    opening = tokenizer('<tool_call>\n{"name": "', add_special_tokens=False).input_ids
    assert engine.prompts == [[1, 2, 3, *opening]]
    choices = [c.choices[0] for c in chunks if c.choices]
    [delta] = [d for ch in choices for d in ch.delta.tool_calls or []]
    assert delta.index == 0 and delta.function.name == "weather"
    assert not any(ch.delta.content for ch in choices) and choices[-1].finish_reason == "tool_calls"


# ---------------------------------------------------------------- the real engine (tiny random model)

@pytest.fixture
def real(make_engine):
    def serve(template: str):
        return running_server(make_engine(template=template))

    return serve


def post(url: str, **body):
    body = {"model": "tiny", "messages": ASK, "max_tokens": 6, "temperature": 0, **body}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)


def test_named_tool_choice_starts_the_reply_with_the_call_on_the_real_engine(real):
    with real("chatml") as (url, _):
        named = post(url, tools=[ADD, WEATHER], tool_choice={"type": "function", "function": {"name": "weather"}})
        required = post(url, tools=[ADD, WEATHER], tool_choice="required", stream=True)
        assert httpx.get(f"{url}/health").json()["running"] == 0
    assert named.status_code == 200, named.text
    # A random model does not finish the call, so it comes back as text, starting with the forced opening.
    reply = named.json()["choices"][0]
    assert reply["message"]["content"].startswith('<tool_call>\n{"name": "weather", "arguments": ')
    assert reply["finish_reason"] in ("stop", "length") and "tool_calls" not in reply["message"]
    assert named.json()["usage"]["completion_tokens"] > 6  # the forced opening counts with the reply
    assert required.status_code == 200
    events = [json.loads(line[6:]) for line in required.text.splitlines()
              if line.startswith("data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text.startswith('<tool_call>\n{"name": "')


def test_forcing_a_call_is_refused_where_the_template_has_no_tool_format(real):
    with real("auto") as (url, _):  # the tiny model's own template ignores tools
        refused = post(url, tools=[ADD], tool_choice="required")
        named = post(url, tools=[ADD], tool_choice={"type": "function", "function": {"name": "add"}})
        auto = post(url, tools=[ADD])
    for r in (refused, named):
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "tool_choice" and "not supported" in r.json()["error"]["message"]
    assert auto.status_code == 200 and auto.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_tool_plan_checks_tool_choice_against_tools():
    from tuneforge.serve import protocol, server

    def plan(**fields):
        body = protocol.ChatRequest.model_validate({"model": "m", "messages": ASK, **fields})
        engine = SimpleNamespace(chat_template=lambda model: SimpleNamespace(spec=None, source="<tool_call>"))
        return server.tool_plan(engine, body)  # type: ignore[arg-type]

    assert plan() is None and plan(tools=[ADD], tool_choice="none") is None
    assert plan(tools=[ADD]).opening == "" and plan(tools=[ADD]).names == {"add"}
    for fields, param in [({"tool_choice": "required"}, "tool_choice"),
                          ({"tools": [ADD], "tool_choice": {"type": "function", "function": {"name": "x"}}},
                           "tool_choice.function.name"),
                          ({"tools": [ADD, ADD]}, "tools")]:
        with pytest.raises(server.ApiError) as err:
            plan(**fields)
        assert err.value.status == 422 and err.value.body["error"]["param"] == param
