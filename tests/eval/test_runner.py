"""`tuneforge eval` end to end on a tiny random model: files written, loss exact, adapters, prompts."""

import json

import pytest
import torch

from tuneforge.config import build_config
from tuneforge.errors import TuneforgeError
from tuneforge.eval.perplexity import reference_loss
from tuneforge.eval.runner import run_eval
from tuneforge.types import Message, Sample

EVAL_ROWS = [
    {"id": "en", "messages": [{"role": "user", "content": "Capital of France?"},
                              {"role": "assistant", "content": "Paris"}]},
    {"id": "zh", "messages": [{"role": "user", "content": "法国的首都是哪里？"},
                              {"role": "assistant", "content": "巴黎"}]},
    {"id": "long", "messages": [{"role": "user", "content": "Repeat: " + "la " * 200},
                                {"role": "assistant", "content": "la"}]},
]


@pytest.fixture
def eval_file(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in EVAL_ROWS), encoding="utf-8")
    return path


def config(model_dir, eval_file, out, **eval_section):
    return build_config({"model": {"name_or_path": str(model_dir)}, "template": {"cutoff_len": 128},
                         "eval": {"datasets": [{"path": str(eval_file)}], "output_dir": str(out),
                                  "generation": {"max_new_tokens": 6, "batch_size": 2},
                                  "metrics": ["exact_match", "contains", "chrf", "length", "refusal"],
                                  **eval_section}})


def test_eval_writes_results_summary_and_report(tiny_model_dir, eval_file, tmp_path):
    cfg = config(tiny_model_dir, eval_file, tmp_path / "out")
    cfg.template.cutoff_policy = "drop"
    run = run_eval(cfg)
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["en", "zh", "long"]
    assert all(0 < r["completion_tokens"] <= 6 and r["prompt_tokens"] > 0 for r in rows)
    # the long sample does not fit template.cutoff_len: counted in the notes, its loss left empty
    assert rows[2]["reference_loss"] is None and rows[0]["reference_loss"] > 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["samples"] == 3
    assert set(summary["scores"]) == {"exact_match", "contains", "chrf", "length", "refusal"}
    assert summary["perplexity"] == pytest.approx(torch.exp(torch.tensor(summary["reference_loss"])).item(), rel=1e-5)
    assert "too_long" in " ".join(run.notes)
    page = (tmp_path / "out" / "report.html").read_text()
    assert "法国的首都是哪里？" in page and "exact_match" in page


def test_reference_loss_equals_the_models_own_loss_on_the_answer_tokens(tiny_model_dir, real_tokenizer):
    from transformers import AutoModelForCausalLM

    from tuneforge.config import TemplateConfig
    from tuneforge.formatting import tokenize_samples

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    samples = [Sample.from_dict(r) for r in EVAL_ROWS[:2]]
    result = reference_loss(model, real_tokenizer, samples, TemplateConfig())
    ds, _ = tokenize_samples(samples, real_tokenizer, TemplateConfig(train_on="last"), use_cache=False)
    expected, tokens = [], 0
    for i in range(2):
        ids = torch.as_tensor(ds["input_ids"][i], dtype=torch.long)[None]
        labels = torch.as_tensor(ds["labels"][i], dtype=torch.long)[None]
        with torch.no_grad():
            expected.append(model(input_ids=ids, labels=labels).loss.item())
        tokens += int((labels[0, 1:] != -100).sum())
    assert result.per_sample == pytest.approx(expected, rel=1e-5)
    assert result.tokens == tokens


def test_eval_with_an_adapter_run_directory(tiny_model_dir, eval_file, tmp_path):
    from tuneforge.train.run import run_training

    train_cfg = build_config({"model": {"name_or_path": str(tiny_model_dir)},
                              "data": str(eval_file.parent / "train.jsonl"),
                              "template": {"cutoff_len": 64}, "method": {"name": "lora", "r": 4},
                              "train": {"output_dir": str(tmp_path / "run"), "max_steps": 1, "batch_size": 2}})
    (eval_file.parent / "train.jsonl").write_text(eval_file.read_text().split("\n", 2)[0] + "\n")
    run_training(train_cfg)
    run = run_eval(config(tiny_model_dir, eval_file, tmp_path / "out", adapter=str(tmp_path / "run"), limit=2))
    assert len(run.rows) == 2
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["adapter"] == str(tmp_path / "run")


def test_few_shot_eval_reports_prompt_cost(tiny_model_dir, eval_file, tmp_path):
    zero = run_eval(config(tiny_model_dir, eval_file, tmp_path / "zero", perplexity=False))
    few = run_eval(config(tiny_model_dir, eval_file, tmp_path / "few", perplexity=False, prompting="few_shot",
                          icl={"k": 1, "selection": "random", "pool": [{"path": str(eval_file)}]}))
    assert few.name == "few_shot" and few.prompt_tokens_per_query > zero.prompt_tokens_per_query
    assert few.rows[0]["prompt"][0]["role"] == "user" and len(few.rows[0]["prompt"]) == 3


def test_eval_errors_name_the_problem(tiny_model_dir, eval_file, tmp_path):
    with pytest.raises(TuneforgeError, match="eval.datasets is empty"):
        run_eval(build_config({"model": {"name_or_path": str(tiny_model_dir)}}))
    text = tmp_path / "t.jsonl"
    text.write_text('{"text": "just text"}\n')
    with pytest.raises(TuneforgeError, match="needs chat samples"):
        run_eval(config(tiny_model_dir, text, tmp_path / "o"))
    with pytest.raises(TuneforgeError, match="no such adapter"):
        run_eval(config(tiny_model_dir, eval_file, tmp_path / "o", adapter=str(tmp_path / "none")))


def test_question_keeps_the_default_system_prompt():
    from tuneforge.eval.runner import question_of

    sample = Sample(messages=[Message("user", "hi"), Message("assistant", "hello")])
    assert [m.role for m in question_of(sample, "Be brief.")] == ["system", "user"]
    assert [m.role for m in question_of(sample)] == ["user"]


def test_rejected_eval_records_are_counted_in_the_notes(tiny_model_dir, eval_file, tmp_path):
    eval_file.write_text(eval_file.read_text() + "{not json\n")
    cfg = config(tiny_model_dir, eval_file, tmp_path / "out", perplexity=False)
    cfg.data.on_error = "skip"
    cfg.data.rejects_path = str(tmp_path / "rejects.jsonl")
    run = run_eval(cfg)
    assert len(run.rows) == 3
    assert any(n.startswith("1 eval records rejected") and "rejects.jsonl" in n for n in run.notes)
