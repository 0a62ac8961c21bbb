"""Tool calls parsed out of replies in each template's syntax, without a model."""

from __future__ import annotations

import json

import pytest

from tuneforge.serve.tool_calls import HERMES, LLAMA3, MISTRAL, ToolCall, call_dicts, syntax_for

NAMES = frozenset({"add", "weather"})


def hermes(name: str, arguments: dict) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": arguments})}\n</tool_call>'


def test_hermes_one_call():
    parsed = HERMES.parse(hermes("add", {"a": 1, "b": 2}), NAMES)
    assert parsed is not None and parsed.calls == [ToolCall("add", '{"a": 1, "b": 2}')]
    assert parsed.content.strip() == ""


def test_hermes_several_calls_and_text_around_them():
    text = "Let me check.\n" + hermes("weather", {"city": "Paris"}) + "\n" + hermes("add", {"a": 1}) + "\nDone."
    parsed = HERMES.parse(text, NAMES)
    assert parsed is not None
    assert [c.name for c in parsed.calls] == ["weather", "add"]
    assert json.loads(parsed.calls[0].arguments) == {"city": "Paris"}
    assert parsed.content == "Let me check.\n\n\nDone."


def test_hermes_last_call_may_end_without_its_closing_tag():
    parsed = HERMES.parse('<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n', NAMES)
    assert parsed is not None and parsed.calls == [ToolCall("add", '{"a": 1}')]


def test_hermes_arguments_as_a_json_string_and_non_ascii():
    parsed = HERMES.parse('<tool_call>{"name": "weather", "arguments": "{\\"city\\": \\"北京\\"}"}</tool_call>', NAMES)
    assert parsed is not None and parsed.calls == [ToolCall("weather", '{"city": "北京"}')]


@pytest.mark.parametrize("text", [
    "no call here",
    '<tool_call>\n{"name": "add", "arguments": {"a": 1}\n</tool_call>',  # bad JSON
    hermes("rm_rf", {}),  # a function the request did not offer
    '<tool_call>{"name": "add", "arguments": [1]}</tool_call>',  # arguments not an object
    '<tool_call>["add"]</tool_call>',
    hermes("add", {"a": 1}) + '<tool_call>{"name": "add", "arguments": </tool_call>',  # one good, one bad
])
def test_hermes_malformed_stays_text(text):
    assert HERMES.parse(text, NAMES) is None


def test_llama3_one_call_several_calls_and_trailing_text():
    parsed = LLAMA3.parse('{"name": "add", "parameters": {"a": 1}}', NAMES)
    assert parsed is not None and parsed.calls == [ToolCall("add", '{"a": 1}')] and parsed.content == ""
    parsed = LLAMA3.parse('<|python_tag|>{"name": "add", "parameters": {"a": 1}}; '
                          '{"name": "weather", "parameters": {"city": "Oslo"}}\nThat is all.', NAMES)
    assert parsed is not None and [c.name for c in parsed.calls] == ["add", "weather"]
    assert parsed.content == "That is all."


@pytest.mark.parametrize("text", [
    "The answer is 3.",
    '{"name": "add", "parameters": {"a": 1}',  # unfinished
    '{"name": "nope", "parameters": {}}',
    '{"city": "Oslo"}',
    'Call: {"name": "add", "parameters": {"a": 1}}',  # a llama3 call opens the reply
])
def test_llama3_malformed_stays_text(text):
    assert LLAMA3.parse(text, NAMES) is None


def test_mistral_calls_in_one_list_with_text_around():
    parsed = MISTRAL.parse('[TOOL_CALLS] [{"name": "add", "arguments": {"a": 1}}, '
                           '{"name": "weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}]', NAMES)
    assert parsed is not None
    assert parsed.calls == [ToolCall("add", '{"a": 1}'), ToolCall("weather", '{"city": "Oslo"}')]
    assert parsed.content == ""
    parsed = MISTRAL.parse('Checking. [TOOL_CALLS][{"name": "add", "arguments": {}}] ok', NAMES)
    assert parsed is not None and parsed.calls == [ToolCall("add", "{}")] and parsed.content == "Checking.  ok"


@pytest.mark.parametrize("text", [
    "No call.",
    '[TOOL_CALLS] [{"name": "add", "arguments": {"a": 1}}',  # unfinished list
    '[TOOL_CALLS] [{"name": "add", "arguments": {}}, {"name": "nope", "arguments": {}}]',  # one not offered
    '[TOOL_CALLS] {"name": "add", "arguments": {}}',  # not a list
    "[TOOL_CALLS] []",
])
def test_mistral_malformed_stays_text(text):
    assert MISTRAL.parse(text, NAMES) is None


def test_openings_parse_once_completed():
    for syntax, tail in [(HERMES, '{"a": 1}}\n</tool_call>'), (LLAMA3, '{"a": 1}}'), (MISTRAL, '{"a": 1}}]')]:
        assert syntax.parse(syntax.opening("add") + tail, NAMES).calls == [ToolCall("add", '{"a": 1}')]
        assert syntax.parse(syntax.opening(None) + 'add", "arguments": ' + tail, NAMES) is not None


def test_safe_prefix_holds_back_what_may_open_a_call():
    assert MISTRAL.safe_prefix("Sure [TOOL") == len("Sure ") and MISTRAL.safe_prefix("Sure.") == len("Sure.")
    assert HERMES.safe_prefix("Hello there") == len("Hello there")
    assert HERMES.safe_prefix("Hello <tool") == len("Hello ")
    assert HERMES.safe_prefix("Hello <tool_call>\n{") == len("Hello ")
    assert HERMES.safe_prefix("a < b") == len("a < b")
    assert LLAMA3.safe_prefix("  ") == 0 and LLAMA3.safe_prefix('{"na') == 0 and LLAMA3.safe_prefix("<|py") == 0
    assert LLAMA3.safe_prefix("Sure") == 4


def test_syntax_for_each_template(tokenizer):
    from tuneforge.formatting import load_template
    from tuneforge.formatting.jinja import JinjaSpec

    assert syntax_for(load_template("chatml", tokenizer)) is HERMES
    assert syntax_for(load_template("qwen", tokenizer)) is HERMES
    assert syntax_for(load_template("llama3", tokenizer)) is LLAMA3
    assert syntax_for(load_template("mistral", tokenizer)) is MISTRAL
    assert syntax_for(load_template("alpaca", tokenizer)) is None
    assert syntax_for(load_template("auto", tokenizer)) is None  # SmolLM2's own template has no tools
    hermes_jinja = tokenizer.chat_template + "{# <tool_call> #}"
    assert syntax_for(JinjaSpec("jinja", "", hermes_jinja).build(tokenizer)) is HERMES


def test_call_dicts_as_openai_writes_them():
    [entry] = call_dicts([ToolCall("add", "{}")])
    assert entry["id"].startswith("call_") and entry["type"] == "function"
    assert entry["function"] == {"name": "add", "arguments": "{}"}
    [delta] = call_dicts([ToolCall("add", "{}")], indexed=True)
    assert delta["index"] == 0
