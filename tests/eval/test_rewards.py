"""Rewards from a spec: metrics, checks, an LLM judge over HTTP, user functions, weighted sums; a reward
that raises scores 0 and is counted, never raised."""

import sys
import types

import pytest
from tests.llm_stub import chat_stub

from tuneforge.errors import ConfigError
from tuneforge.eval.rewards import build_reward, build_rewards

SCHEMA = {"type": "object", "required": ["city", "temp_c"], "additionalProperties": False,
          "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}}}


def test_metric_rewards_score_like_the_metrics():
    rewards = build_rewards([{"name": "json_schema", "json_schema": SCHEMA}, "exact_match",
                             {"name": "regex", "pattern": r"\d+"}])
    completions = ['{"city": "Oslo", "temp_c": 12}', '```json\n{"city": "Oslo"}\n```', "Oslo 12"]
    scores = rewards(completions, ["Oslo 12", None, "oslo 12"])
    assert scores.by_reward == {"json_schema": [1.0, 0.0, 0.0], "exact_match": [0.0, 0.0, 1.0],
                                "regex": [1.0, 0.0, 1.0]}
    assert scores.total == [2.0, 0.0, 2.0]
    assert scores.not_applicable == {"exact_match": 1}  # no reference: 0, and counted
    assert not scores.failures


def test_weighted_sum_and_length_and_format_checks():
    rewards = build_rewards([{"name": "length", "min_words": 2, "max_words": 4, "weight": 0.5},
                             {"name": "format", "pattern": r"<answer>.*</answer>", "weight": 2.0}])
    scores = rewards(["<answer>a b</answer>", "one", "w " * 6, "<answer>x</answer> 好的"])
    # Words as tuneforge.text counts them: punctuation apart, a CJK character each.
    assert scores.by_reward["length"] == [0.0, 0.5, 0.5, 0.0]  # 8 words: 1 - 4/4; 1 of 2; 6: 1 - 2/4
    assert scores.by_reward["format"] == [1.0, 0.0, 0.0, 0.0]  # the whole reply must match
    assert scores.total == pytest.approx([2.0, 0.25, 0.25, 0.0])
    assert rewards(["a b c"]).by_reward["length"] == [1.0]


def test_user_function_that_raises_counts_failures_and_scores_zero(monkeypatch):
    module = types.ModuleType("my_rewards")

    def picky(completion, reference):
        if "boom" in completion:
            raise RuntimeError("cannot score this")
        return len(completion) / 10

    module.picky = picky
    module.nan = lambda c, r: float("nan")
    monkeypatch.setitem(sys.modules, "my_rewards", module)
    rewards = build_rewards([{"name": "picky", "function": "my_rewards:picky"},
                             {"name": "nan", "function": "my_rewards:nan"}, "json_valid"])
    scores = rewards(["abcde", "boom", "{}"])
    assert scores.by_reward["picky"] == [0.5, 0.0, 0.2]
    assert scores.by_reward["nan"] == [0.0, 0.0, 0.0]
    assert scores.failures == {"picky": 1, "nan": 3}
    assert scores.errors["picky"] == "RuntimeError: cannot score this"
    assert "not a finite number" in scores.errors["nan"]
    assert scores.total == [0.5, 0.0, 1.2]  # the other rewards still count


@pytest.mark.parametrize("spec, message", [
    ({"name": "json_shema"}, "did you mean 'json_schema'"),
    ({"name": "length"}, "needs `max_words:`"),
    ({"name": "length", "min_words": 5, "max_words": 2}, "min_words 5 is above max_words 2"),
    ({"name": "format", "pattern": "("}, "invalid pattern"),
    ({"name": "judge"}, "needs `judge:`"),
    ({"name": "mine", "function": "no_such_module_xyz:f"}, "cannot load no_such_module_xyz:f"),
])
def test_bad_specs_name_the_reward(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build_reward(spec)


def test_duplicate_names_are_refused():
    with pytest.raises(ConfigError, match="appears twice"):
        build_rewards(["json_valid", "json_valid"])


def judge(body, headers):
    """An endpoint whose verdict depends on the answer: fault injection (no verdict, a 500)."""
    prompt = body["messages"][-1]["content"]
    if "crash" in prompt:
        return 500, ""
    return "no idea" if "mumble" in prompt else ('{"score": 10}' if "Paris" in prompt else "Score: 1")


def test_judge_reward_scales_scores_and_counts_missing_verdicts():
    with chat_stub(judge) as stub:
        rewards = build_rewards([{"name": "judge", "judge": {"url": stub.url, "model": "m", "retries": 0}}])
        scores = rewards(["Paris", "Lyon", "mumble", "crash"], None, ["Capital of France?"] * 4)
    assert scores.by_reward["judge"] == [1.0, 0.0, 0.0, 0.0]
    assert scores.failures == {"judge": 2}
    assert "no 1-10 score" in scores.errors["judge"]
