"""`eval` and `compare` report their progress through `on_progress`; an adapter's eval is named by it."""

import json
import re

import pytest
from typer.testing import CliRunner

from tuneforge.cli import app
from tuneforge.config import build_config
from tuneforge.eval.compare import run_compare
from tuneforge.eval.runner import artefact_name, run_eval

ROWS = [{"id": f"q{i}", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Paris"}]}
        for i, q in enumerate(["Capital of France?", "法国的首都是哪里？", "And of Italy?"])]


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    """An eval set, and a one-step LoRA run on it in a run directory called weather-lora."""
    from tuneforge.train.run import run_training

    root = tmp_path_factory.mktemp("progress")
    data = root / "eval.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    run_training(build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": str(data),
                               "template": {"cutoff_len": 64}, "method": {"name": "lora", "r": 4},
                               "train": {"output_dir": str(root / "weather-lora"), "max_steps": 1, "batch_size": 2}}))
    return data, root / "weather-lora"


def config(model_dir, data, out, **eval_section):
    return build_config({"model": {"name_or_path": str(model_dir)}, "template": {"cutoff_len": 128},
                         "eval": {"datasets": [{"path": str(data)}], "output_dir": str(out),
                                  "generation": {"max_new_tokens": 3, "batch_size": 2}, "metrics": ["exact_match"],
                                  **eval_section}})


def events_of(calls, what):
    return [(done, total) for w, done, total in calls if w == what]


def assert_counts_up_to(events, total):
    assert events[0] == (0, total) and events[-1] == (total, total)
    assert [d for d, _ in events] == sorted(d for d, _ in events) and {t for _, t in events} == {total}


def test_eval_reports_answers_and_reference_loss_and_names_the_adapter(tiny_model_dir, trained, tmp_path):
    data, run_dir = trained
    calls = []
    run = run_eval(config(tiny_model_dir, data, tmp_path / "out", adapter=str(run_dir)),
                   on_progress=lambda *a: calls.append(a))
    assert {w for w, _, _ in calls} == {"weather-lora", "reference loss"}
    assert_counts_up_to(events_of(calls, "weather-lora"), 3)
    assert_counts_up_to(events_of(calls, "reference loss"), 3)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert run.name == summary["strategy"] == "weather-lora" and summary["prompting"] == "zero_shot"
    assert "(weather-lora)</h1>" in (tmp_path / "out" / "report.html").read_text()


def test_eval_without_an_adapter_is_named_by_its_prompting(tiny_model_dir, trained, tmp_path):
    data, _ = trained
    calls = []
    run = run_eval(config(tiny_model_dir, data, tmp_path / "out", perplexity=False),
                   on_progress=lambda *a: calls.append(a))
    assert run.name == "zero_shot" and {w for w, _, _ in calls} == {"zero_shot"}
    assert_counts_up_to(events_of(calls, "zero_shot"), 3)


def test_artefact_names(tmp_path):
    run = tmp_path / "runs" / "qs"
    (run / "final").mkdir(parents=True)
    (run / "checkpoints" / "step-4").mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    (tmp_path / "my-adapter").mkdir()
    assert artefact_name(run / "final") == "qs" and artefact_name(run) == "qs"
    assert artefact_name(run / "checkpoints" / "step-4") == "qs/checkpoints/step-4"
    assert artefact_name(tmp_path / "my-adapter") == "my-adapter"


def test_compare_reports_each_strategy_up_to_its_total(tiny_model_dir, trained, tmp_path):
    data, run_dir = trained
    calls = []
    cfg = config(tiny_model_dir, data, tmp_path / "out", compare={"strategies": ["zero_shot"],
                                                                   "adapters": {"tuned": str(run_dir)}})
    result = run_compare(cfg, on_progress=lambda *a: calls.append(a))
    assert [r.name for r in result.runs] == ["zero_shot", "tuned"]
    assert [w for w, done, _ in calls if done == 0] == ["zero_shot", "tuned"]  # in the order they run
    for name in ("zero_shot", "tuned"):
        assert_counts_up_to(events_of(calls, name), 3)


def test_eval_command_prints_plain_progress_and_the_adapters_name(tiny_model_dir, trained, tmp_path, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    data, run_dir = trained
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(f"model: {{name_or_path: {tiny_model_dir}}}\neval:\n  datasets: [{{path: {data}}}]\n"
                   f"  output_dir: {tmp_path / 'out'}\n  generation: {{max_new_tokens: 3}}\n  metrics: [exact_match]\n")
    result = CliRunner().invoke(app, ["eval", str(cfg), "--adapter", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "weather-lora 3/3 (100%) · " in result.output and "reference loss 3/3 (100%) · " in result.output
    assert re.search(r"weather-lora [┃│]", result.output) and "zero_shot" not in result.output  # the summary table
