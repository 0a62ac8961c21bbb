"""`tuneforge generate` reports its progress, counted from where a resumed run starts."""

import json

from typer.testing import CliRunner

from tuneforge.cli import app


def test_generate_reports_progress_up_to_the_total_and_prints_plain_lines(tiny_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.io import read_samples
    from tuneforge.serve.engine import Engine
    from tuneforge.serve.generate import generate_file
    from tuneforge.serve.sampling import SamplingParams

    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "messages": [{"role": "user", "content": f"Q{i}?"},
                                                                 {"role": "assistant", "content": "A"}]}) + "\n"
                            for i in range(5)))
    samples, _ = read_samples(str(data))
    out = tmp_path / "out.jsonl"
    calls = []
    with Engine(AutoModelForCausalLM.from_pretrained(tiny_dir), AutoTokenizer.from_pretrained(tiny_dir),
                max_batch_size=2) as engine:
        generate_file(engine, samples[:2], out, SamplingParams(max_tokens=2))
        generate_file(engine, samples, out, SamplingParams(max_tokens=2),
                      on_progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (2, 5) and calls[-1] == (5, 5)  # two were there already
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and {3, 4} <= {d for d, _ in calls}

    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    result = CliRunner().invoke(app, ["generate", str(data), "-o", str(tmp_path / "again.jsonl"), "--model",
                                      str(tiny_dir), "--max-new-tokens", "2"])
    assert result.exit_code == 0, result.output
    assert "generate 5/5 (100%) · " in result.output and "5 replies generated" in result.output
