"""Tool calling end to end on the default model: a LoRA fine-tuned on a small function-calling set, served
by `tuneforge serve` (a real process) with the base beside it, asked through the official `openai` client
with `tools`. On held-out prompts (cities and phrasings it never saw) the adapter answers with
`tool_calls` whose arguments parse as JSON and name a listed function; the base rarely does."""

from __future__ import annotations

import json
import random

import pytest
from tests.integration.serving import BASE, tuneforge_serve

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                       "required": ["city", "unit"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Current local time in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
]
TRAIN_CITIES = ["Paris", "Berlin", "Madrid", "Rome", "Vienna", "Prague", "Lisbon", "Dublin", "Oslo", "Athens",
                "Warsaw", "Zurich", "Boston", "Denver", "Seattle", "Toronto", "Sydney", "Tokyo", "Seoul", "Cairo"]
HELD_OUT_CITIES = ["Helsinki", "Lagos", "Osaka", "Lima", "Nairobi", "Quito", "Hanoi", "Perth"]
WEATHER = ["What's the weather in {city} in {unit}?", "How warm is it in {city} right now? Use {unit}.",
           "Tell me the current weather for {city} ({unit}).", "Is it cold in {city} today? Answer in {unit}."]
TIME = ["What time is it in {city}?", "Tell me the local time in {city}.", "Current time in {city}, please."]
HELD_OUT_WEATHER = "Could you check the weather over in {city}? I want {unit}."
HELD_OUT_TIME = "Do you know the time in {city} at the moment?"


def conversation(question: str, name: str, arguments: dict) -> dict:
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": "", "tool_calls": [call]}], "tools": TOOLS}


def training_set() -> list[dict]:
    rng = random.Random(0)
    rows = []
    for city in TRAIN_CITIES:
        unit = rng.choice(["celsius", "fahrenheit"])
        rows.append(conversation(rng.choice(WEATHER).format(city=city, unit=unit), "get_weather",
                                 {"city": city, "unit": unit}))
        rows.append(conversation(rng.choice(TIME).format(city=city), "get_time", {"city": city}))
    return rows


def held_out() -> list[tuple[str, str, str]]:
    """(question, expected function, city)"""
    out = []
    for i, city in enumerate(HELD_OUT_CITIES):
        if i % 2 == 0:
            out.append((HELD_OUT_WEATHER.format(city=city, unit="celsius"), "get_weather", city))
        else:
            out.append((HELD_OUT_TIME.format(city=city), "get_time", city))
    return out


def call_rates(client, model: str) -> tuple[float, float, list]:
    """Over the held-out prompts: the share answered with a call to a listed function whose JSON
    arguments name the prompt's city, and the share of those calls to the very function asked for."""
    names = {t["function"]["name"] for t in TOOLS}
    valid = exact = 0
    replies = []
    for question, expected, city in held_out():
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                               tools=TOOLS, temperature=0, max_tokens=48)
        message = reply.choices[0].message
        replies.append((question, message.content, [c.function.name for c in message.tool_calls or []]))
        calls = [c for c in message.tool_calls or []
                 if c.function.name in names and city in json.dumps(json.loads(c.function.arguments))]
        if calls:
            assert reply.choices[0].finish_reason == "tool_calls"
            valid += 1
            exact += calls[0].function.name == expected
    n = len(held_out())
    return valid / n, exact / n, replies


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, default_model):
    from tuneforge.config import build_config
    from tuneforge.train.run import run_training

    root = tmp_path_factory.mktemp("tools")
    data = root / "tools.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in training_set()))
    cfg = build_config({"model": {"name_or_path": BASE}, "data": str(data),
                        "template": {"cutoff_len": 512},
                        "method": {"name": "lora", "r": 16, "alpha": 32, "dropout": 0.0},
                        "train": {"output_dir": str(root / "run"), "max_steps": 30, "batch_size": 4,
                                  "learning_rate": 1e-3, "warmup_ratio": 0.05}})
    return run_training(cfg).run_dir


def test_a_fine_tuned_adapter_calls_the_listed_functions_through_tuneforge_serve(trained_run):
    # The base gets the same tool-capable template the run trained with, so both see the tools.
    with tuneforge_serve("--adapter", f"tools={trained_run}", "--template", "chatml") as client:
        before, _, _ = call_rates(client, BASE)
        after, exact, replies = call_rates(client, "tools")
        print(f"\nheld-out prompts answered with a valid call: base {before:.0%} -> adapter {after:.0%} "
              f"(the function asked for: {exact:.0%})")
        assert after >= 0.75 and after > before, replies

        stream = client.chat.completions.create(
            model="tools", messages=[{"role": "user", "content": held_out()[0][0]}], tools=TOOLS, temperature=0,
            max_tokens=48, stream=True)
        calls, finish = [], None
        for chunk in stream:
            choice = chunk.choices[0]
            calls += choice.delta.tool_calls or []
            finish = choice.finish_reason or finish
        assert finish == "tool_calls" and calls and calls[0].function.name == "get_weather"
        assert "Helsinki" in json.loads(calls[0].function.arguments)["city"]
