"""The LLM-judge safety hook against a stub OpenAI-compatible endpoint on 127.0.0.1 (tests/llm_stub.py)."""

from __future__ import annotations

import json

import pytest
from curate_samples import chat
from tests.llm_stub import chat_stub

from tuneforge.curate import Drop, RunOptions, parse_op, run
from tuneforge.curate.judge import parse_verdict
from tuneforge.types import Sample

# what the fake judge answers, by a word in the record
REPLIES = {
    "bread": '{"verdict": "safe", "reason": "cooking"}',
    "bomb": 'Sure. {"verdict": "UNSAFE", "reason": "weapons"}',
    "炸弹": "不安全：涉及爆炸物",
    "poem": "SAFE - a poem",
    "riddle": "I would rather not say.",
}


def judge(body, headers):
    text = body["messages"][-1]["content"]
    if "crash" in text:
        return 500, ""
    return next((r for word, r in REPLIES.items() if word in text), "")


@pytest.fixture
def stub():
    with chat_stub(judge) as stub:
        yield stub


@pytest.fixture
def server(stub):
    return stub.url


def test_verdicts_reasons_and_request(server, stub, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    (tmp_path / "prompt.txt").write_text("Judge this.", encoding="utf-8")
    op = parse_op({"op": "llm_judge", "url": server, "model": "judge-1", "api_key_env": "JUDGE_KEY",
                   "prompt_file": str(tmp_path / "prompt.txt"), "retries": 0}, "0").build()
    assert isinstance(op(chat("How do I bake bread?", "Knead and bake.")), Sample)
    assert op(chat("How to build a bomb", "...")) == Drop("llm_unsafe", "weapons")
    assert op(chat("如何制作炸弹", "...")).reason == "llm_unsafe"
    assert isinstance(op(chat("Write a poem", "Roses...")), Sample)
    assert op(chat("A riddle", "?")) == Drop("judge_unparsable", "I would rather not say.")
    assert op(chat("crash", "x")) == Drop("judge_error", "HTTP 500")
    first = stub.seen[0]
    assert (first["auth"], first["path"], first["model"], first["temperature"]) == \
        ("Bearer sk-test", "/v1/chat/completions", "judge-1", 0)
    assert first["messages"][0] == {"role": "system", "content": "Judge this."}
    assert first["messages"][1]["content"] == "How do I bake bread?\nKnead and bake."


def test_a_run_counts_every_outcome_and_never_crashes(server, tmp_path):
    data = [chat(q, "a", source="d", line=i + 1) for i, q in enumerate(["bread", "bomb", "riddle", "crash", "poem"])]
    ops = [parse_op({"op": "llm_judge", "url": server, "model": "m", "retries": 0, "on_error": "keep"}, "0")]
    stats = run(data, ops, tmp_path, RunOptions(workers=2, shard_size=2))
    assert stats["removed"] == {"llm_judge/llm_unsafe": 1, "llm_judge/judge_unparsable": 1}
    kept = [json.loads(line) for line in (tmp_path / "data.jsonl").read_text().splitlines()]
    assert [k["meta"].get("judge") for k in kept] == [None, "error", None]


def test_unreachable_endpoint_is_an_error_verdict_not_a_crash():
    # port 9 (discard) on the loopback: nothing listens there, the connection is refused at once
    op = parse_op({"op": "llm_judge", "url": "http://127.0.0.1:9/v1", "model": "m", "retries": 1}, "0").build()
    out = op(chat("q", "a"))
    assert out.reason == "judge_error" and out.detail.startswith("request failed")


@pytest.mark.parametrize("reply,verdict", [
    ('{"verdict": "safe", "reason": "ok"}', (False, "ok")),
    ('```json\n{"verdict": "Unsafe", "reason": "hate"}\n```', (True, "hate")),
    ("UNSAFE", (True, "UNSAFE")),
    ("The text is safe.", (False, "The text is safe.")),
    ("安全", (False, "安全")),
    ("不安全", (True, "不安全")),
    ('{"verdict": "maybe"}', None),
    ("", None),
    ("{not json", None),
])
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict
