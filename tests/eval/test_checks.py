"""Contamination (curation's reference matching against the training data) and the forgetting probe."""

import json

import pytest

from tuneforge.config import TemplateConfig, build_config
from tuneforge.eval.contamination import contamination_check
from tuneforge.eval.forgetting import Forgetting, ProbeScores, forgetting_check, probe_samples
from tuneforge.types import Message, Sample


def chat(q, a, id_):
    return Sample(messages=[Message("user", q), Message("assistant", a)], id=id_)


def test_contamination_finds_near_copies_of_training_prompts_and_answers(tmp_path):
    train = tmp_path / "train.jsonl"
    rows = [("Explain why the sky appears blue during a clear summer day", "Rayleigh scattering of sunlight"),
            ("请解释为什么晴朗的夏天天空是蓝色的", "因为阳光的瑞利散射")]
    train.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                      {"role": "assistant", "content": a}]},
                                        ensure_ascii=False) + "\n" for q, a in rows), encoding="utf-8")
    evals = [chat("Explain why the sky appears blue during a clear summer day!", "Because of scattering", "copied-en"),
             chat("请解释为什么晴朗的夏天天空是蓝色的？", "散射", "copied-zh"),
             chat("What is the boiling point of water at sea level in Celsius", "Rayleigh scattering of sunlight",
                  "answer"),
             chat("Name a large animal that lives in the ocean", "The blue whale", "clean")]
    found = contamination_check(evals, [str(train)])
    assert [p["id"] for p in found.prompts] == ["copied-en", "copied-zh"]
    assert found.prompts[0]["match"].startswith(f"{train}:1") and "jaccard" in found.prompts[0]["match"]
    assert [a["id"] for a in found.answers] == ["answer"]
    assert found.to_dict()["checked"] == 4


def test_eval_reports_contamination_against_the_training_data(tiny_model_dir, tmp_path):
    from tuneforge.eval.runner import run_eval

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Explain why the sky appears blue today"},
                                             {"role": "assistant", "content": "Scattering"}]}) + "\n")
    cfg = build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": str(data),
                        "eval": {"datasets": [{"path": str(data)}], "output_dir": str(tmp_path / "o"),
                                 "perplexity": False, "generation": {"max_new_tokens": 2}, "metrics": ["length"]}})
    run = run_eval(cfg)
    assert run.extra["contamination"]["prompt_matches"] == 1
    assert any("near-copy training prompts" in n for n in run.notes)


def test_forgetting_delta():
    f = Forgetting(ProbeScores(10.0, 0.75), ProbeScores(12.0, 0.5))
    assert f.perplexity_change == pytest.approx(0.2) and f.instructions_change == pytest.approx(-0.25)
    assert f.to_dict()["before"] == {"text_perplexity": 10.0, "instructions_correct": 0.75}


def test_probe_files_hold_english_and_chinese_text_and_solved_instructions():
    text, instructions = probe_samples()
    assert len(text) >= 6 and all(s.kind == "text" for s in text)
    assert any("春天" in s.text for s in text)
    assert len(instructions) >= 10 and all(s.messages[-1].role == "assistant" for s in instructions)


def test_forgetting_check_probes_before_and_after_an_adapter(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.methods import get_method

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    method = get_method("lora")
    adapted = method.apply(base, method.config_cls(r=2))
    for name, p in adapted.named_parameters():
        if "lora_B" in name:
            p.data.fill_(0.05)  # a visible change
    method.save(adapted, tmp_path / "adapter")
    fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    result, tuned = forgetting_check(fresh, tokenizer, tmp_path / "adapter", TemplateConfig())
    assert result.before.text_perplexity > 1 and result.after.text_perplexity > 1
    assert result.perplexity_change != 0.0
    assert 0.0 <= result.before.instructions_correct <= 1.0
    assert tuned is not fresh
