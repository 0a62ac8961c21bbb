"""The recommendation after a comparison, and the advisor before one."""

import pytest

from tuneforge.eval.advice import UseCase, advise, compare_config, recommend
from tuneforge.eval.runner import StrategyRun


def run(name, score, tokens):
    return StrategyRun(name, [], {"contains": score}, 0.1, tokens)


def test_the_best_strategy_wins_with_the_ranking_as_first_reason():
    runs = [run("zero_shot", 0.1, 40), run("few_shot", 0.3, 200), run("rag", 0.8, 250), run("lora", 0.2, 40)]
    rec = recommend(runs, "contains", {"lora"})
    assert rec.strategy == "rag"
    assert rec.reasons[0] == "contains: rag 0.8, few_shot 0.3, lora 0.2, zero_shot 0.1"
    assert "documents" in rec.reasons[1]


def test_a_tie_goes_to_the_cheaper_strategy_per_query():
    runs = [run("few_shot", 0.90, 300), run("lora", 0.89, 40)]
    rec = recommend(runs, "contains", {"lora"})
    assert rec.strategy == "lora" and "costs less per query" in rec.reasons[1]
    assert "fine-tuning" in rec.reasons[2]


def test_changing_knowledge_prefers_rag_among_ties_and_warns_a_fine_tune():
    runs = [run("rag", 0.85, 300), run("lora", 0.86, 40)]
    assert recommend(runs, "contains", {"lora"}, knowledge_changes_often=True).strategy == "rag"
    rec = recommend([run("rag", 0.5, 300), run("lora", 0.9, 40)], "contains", {"lora"}, knowledge_changes_often=True)
    assert rec.strategy == "lora" and "retrain" in rec.reasons[-1]


def test_the_inference_budget_rules_out_long_prompts():
    runs = [run("few_shot", 0.9, 900), run("zero_shot", 0.5, 50)]
    rec = recommend(runs, "contains", set(), max_prompt_tokens=500)
    assert rec.strategy == "zero_shot" and "over the budget of 500" in rec.reasons[1]


def test_ties_scale_with_0_to_100_metrics():
    runs = [StrategyRun("few_shot", [], {"chrf": 80.0}, 0.1, 300), StrategyRun("lora", [], {"chrf": 78.5}, 0.1, 40)]
    assert recommend(runs, "chrf", {"lora"}).strategy == "lora"  # within 2 points of 100
    assert recommend([run("x", None, 1)], "contains", set()).strategy == "undecided"


@pytest.mark.parametrize("case, expected", [
    (UseCase("knowledge", 20, True, True, "low"), "rag"),
    (UseCase("format", 500, False, False), "fine_tuned"),
    (UseCase("format", 10, False, False), "few_shot"),
    (UseCase("skill", 20, False, False, inference_budget="low"), "fine_tuned"),
    (UseCase("format", 500, False, False, can_train=False), "few_shot"),
    (UseCase("knowledge", 1000, False, False, can_train=False), "zero_shot"),
])
def test_advise(case, expected):
    rec = advise(case)
    assert rec.strategy == expected and rec.reasons


def test_the_generated_compare_config_is_valid():
    from tuneforge.config import build_config

    case = UseCase("knowledge", 20, True, False, inference_budget="low")
    cfg = build_config(compare_config(case, train="t.jsonl", eval_set="e.jsonl", documents=["kb/"], run_dir="runs/x"))
    assert cfg.eval.compare.strategies == ["zero_shot", "few_shot", "rag"]
    assert cfg.eval.rag.documents == ["kb/"] and cfg.eval.compare.adapters == {"lora": "runs/x"}
    assert cfg.eval.compare.max_prompt_tokens == 256 and cfg.train.output_dir == "runs/x"
