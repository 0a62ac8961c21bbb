"""The registry, built-ins against the official Jinja templates, and Jinja segment derivation."""

from __future__ import annotations

import pytest

from tuneforge.config import TemplateConfig
from tuneforge.errors import ConfigError
from tuneforge.formatting import (
    BUILTIN_TEMPLATES,
    JinjaSpec,
    SampleRejected,
    Segment,
    TemplateError,
    load_template,
    prompt_text,
    register_template,
    template_names,
    template_specs,
)
from tuneforge.formatting.base import join
from tuneforge.formatting.encode import Encoder
from tuneforge.types import Message, Sample

# Official templates, as published in each model's tokenizer_config.json (the reference renderer).
CHATML_JINJA = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
                "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
                "{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA2_JINJA = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
LLAMA3_JINJA = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}")
QWEN25_JINJA = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""  # noqa: E501 (Qwen2.5's official template, verbatim)
OFFICIAL = {"chatml": CHATML_JINJA, "llama2": LLAMA2_JINJA, "llama3": LLAMA3_JINJA, "qwen": QWEN25_JINJA}

TOOLS = [{"type": "function", "function": {"name": "weather", "description": "Weather in a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]


def conversations() -> list[tuple[list[Message], list | None]]:
    u, a = Message("user", "Hi, who are you?"), Message("assistant", "A helper.")
    u2, a2 = Message("user", "Weather in Paris?"), Message("assistant", "Sunny, 20 °C.")
    return [([u, a], None), ([Message("system", "Be terse."), u, a, u2, a2], None), ([u, a, u2, a2, u, a], None)]


def tool_conversation() -> list[Message]:
    return [Message("user", "Weather in Paris and Rome?"),
            Message("assistant", "Checking.", tool_calls=[{"name": "weather", "arguments": {"city": "Paris"}},
                                                           {"name": "weather", "arguments": '{"city": "Rome"}'}]),
            Message("tool", "sunny", name="weather"), Message("tool", "rainy", name="weather"),
            Message("assistant", "Paris is sunny, Rome rainy.")]


def reference_message(m: Message) -> dict:
    """The message as HF templates expect it: OpenAI-style tool calls with parsed arguments."""
    d = m.to_dict()
    if m.tool_calls:
        d["tool_calls"] = [{"type": "function", "function": {"name": n, "arguments": a}} for _, n, a in m.calls()]
    return d


def test_registry_lists_auto_and_every_builtin():
    assert template_names() == ["auto", *(t.name for t in BUILTIN_TEMPLATES)]
    assert {"chatml", "llama2", "llama3", "qwen", "alpaca", "human_assistant", "plain"} <= set(template_names())
    assert all(spec.description for spec in template_specs())


def test_registry_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_template(JinjaSpec("chatml", "again", CHATML_JINJA))


def test_unknown_template_names_the_key_and_the_closest_name(char_tokenizer):
    with pytest.raises(ConfigError, match="template.name.*did you mean 'chatml'"):
        load_template("chatm", char_tokenizer)


@pytest.mark.parametrize("spec", template_specs(), ids=lambda s: s.name)
def test_every_template_renders_replies_as_trainable_segments(spec, make_char_tokenizer):
    tokenizer = make_char_tokenizer()
    tokenizer.chat_template = CHATML_JINJA
    template = spec.build(tokenizer)
    for messages, tools in conversations():
        segments = template.render(messages, tools)
        replies = [s.text for s in segments if s.trainable]
        assert len(replies) == sum(m.role == "assistant" for m in messages)
        for reply, message in zip(replies, (m for m in messages if m.role == "assistant")):
            assert message.content in reply and reply != message.content  # content plus its end token
        # the prompt for the last reply is exactly the text before it
        head = prompt_text(template, messages[:-1], tools)
        assert join(segments).startswith(head) and join(segments)[len(head):].lstrip().startswith(
            messages[-1].content)


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_builtins_render_exactly_like_the_official_templates(name, char_tokenizer):
    template = load_template(name, char_tokenizer)
    cases = conversations()
    if name == "qwen":
        cases += [(tool_conversation(), TOOLS), (tool_conversation()[:3], None)]
    for messages, tools in cases:
        official = JinjaSpec("ref", "", OFFICIAL[name])
        ref = lambda msgs, gen: char_tokenizer.apply_chat_template(  # noqa: E731
            [reference_message(m) for m in msgs], add_generation_prompt=gen, tokenize=False,
            tools=tools, chat_template=official.source)  # noqa: B023 (ref is only called in this iteration)
        assert join(template.render(messages, tools)) == ref(messages, False)
        if name != "llama2":  # Llama 2's template has no generation prompt; its prompt ends at [/INST]
            assert prompt_text(template, messages[:-1], tools) == ref(messages[:-1], True)


def test_tokenizer_own_template_matches_chatml_with_its_default_system(smollm2):
    auto, chatml = load_template("auto", smollm2), load_template("chatml", smollm2)
    for messages, _ in conversations():
        with_system = messages if messages[0].role == "system" else [
            Message("system", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"), *messages]
        assert auto.render(messages) == chatml.render(with_system)
        assert prompt_text(auto, messages[:-1]) == prompt_text(chatml, with_system[:-1])


def test_jinja_from_config_overrides_the_name(char_tokenizer):
    template = load_template(TemplateConfig(name="llama2", jinja=CHATML_JINJA), char_tokenizer)
    assert template.render(conversations()[0][0]) == [
        Segment("<|im_start|>user\nHi, who are you?<|im_end|>\n<|im_start|>assistant\n", False),
        Segment("A helper.<|im_end|>", True), Segment("\n", False)]


def test_auto_without_a_chat_template_is_a_clear_error(make_char_tokenizer):
    with pytest.raises(TemplateError, match="no chat template"):
        load_template("auto", make_char_tokenizer())


def test_jinja_that_ignores_the_generation_prompt_is_refused(char_tokenizer):
    with pytest.raises(TemplateError, match="add_generation_prompt"):
        load_template(TemplateConfig(jinja=LLAMA2_JINJA), char_tokenizer)


def test_a_jinja_template_that_rewrites_earlier_turns_is_reported(char_tokenizer):
    # Renders only the last assistant reply in full (like templates that drop old reasoning).
    jinja = ("{% for m in messages %}<|im_start|>{{ m.role }}\n"
             "{% if m.role == 'assistant' and not loop.last %}...{% else %}{{ m.content }}{% endif %}"
             "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    encoder = Encoder.create(char_tokenizer, TemplateConfig(jinja=jinja))
    encoder.encode(Sample(messages=conversations()[0][0]))  # one turn is fine
    with pytest.raises(SampleRejected, match="not prefix-stable") as e:
        encoder.encode(Sample(messages=conversations()[2][0]))
    assert e.value.reason == "template_error"


@pytest.mark.parametrize("name", ["alpaca", "llama2", "human_assistant", "plain"])
def test_templates_without_a_tool_format_refuse_tool_calls(name, char_tokenizer):
    with pytest.raises(TemplateError, match="no tool-call format"):
        load_template(name, char_tokenizer).render(tool_conversation(), TOOLS)


def test_llama3_tool_calls_and_ipython_outputs(char_tokenizer):
    segments = load_template("llama3", char_tokenizer).render(tool_conversation(), TOOLS)
    text = join(segments)
    assert '"name": "weather"' in text.split("<|eot_id|>")[0]  # definitions in the system turn
    replies = [s.text for s in segments if s.trainable]
    assert replies[0] == ('Checking.\n{"name": "weather", "parameters": {"city": "Paris"}}\n'
                          '{"name": "weather", "parameters": {"city": "Rome"}}<|eot_id|>')
    assert "<|start_header_id|>ipython<|end_header_id|>\n\nsunny<|eot_id|>" in text


def test_mistral_tool_calls_results_and_definitions(char_tokenizer):
    """Mistral v0.3's layout: definitions in `[AVAILABLE_TOOLS]` before the (first) user turn, the calls of a
    reply as one `[TOOL_CALLS]` JSON list, results in `[TOOL_RESULTS]`; calls trained, results never."""
    messages = [Message("user", "Weather in Paris and Rome?"),
                Message("assistant", "", tool_calls=[{"name": "weather", "arguments": {"city": "Paris"}},
                                                     {"name": "weather", "arguments": {"city": "Rome"}}]),
                Message("tool", "sunny", name="weather"), Message("tool", "rainy", name="weather"),
                Message("assistant", "Paris is sunny, Rome rainy.")]
    segments = load_template("mistral", char_tokenizer).render(messages, TOOLS)
    definition = ('{"type": "function", "function": {"name": "weather", "description": "Weather in a city", '
                  '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}')
    assert join(segments) == (
        f"<s>[AVAILABLE_TOOLS] [{definition}][/AVAILABLE_TOOLS][INST] Weather in Paris and Rome?[/INST]"
        '[TOOL_CALLS] [{"name": "weather", "arguments": {"city": "Paris"}}, '
        '{"name": "weather", "arguments": {"city": "Rome"}}]</s>'
        '[TOOL_RESULTS] {"content": sunny}[/TOOL_RESULTS][TOOL_RESULTS] {"content": rainy}[/TOOL_RESULTS]'
        " Paris is sunny, Rome rainy.</s>")
    assert [s.text for s in segments if s.trainable] == [
        '[TOOL_CALLS] [{"name": "weather", "arguments": {"city": "Paris"}}, '
        '{"name": "weather", "arguments": {"city": "Rome"}}]</s>', " Paris is sunny, Rome rainy.</s>"]


def test_a_system_message_after_the_first_is_refused(char_tokenizer):
    with pytest.raises(TemplateError, match="only the first message"):
        load_template("chatml", char_tokenizer).render([Message("user", "a"), Message("system", "b")])
