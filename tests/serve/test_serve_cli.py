"""`tuneforge chat` (REPL and one shot), `generate` (resumable), `export` and `serve` argument checks."""

from __future__ import annotations

import json

from tests.serve.conftest import QUESTIONS, REPLIES
from typer.testing import CliRunner

from tuneforge.cli import app


def run(args, input=None):
    result = CliRunner().invoke(app, args, input=input)
    assert result.exit_code == 0, result.output
    return result.output


def test_chat_repl_keeps_history_and_takes_commands(tiny_dir, adapters):
    out = run(["chat", "--model", str(tiny_dir), "--adapter", adapters["alpha"]],
              input=f"{QUESTIONS[0]}\n/system Be brief.\n{QUESTIONS[1]}\n/reset\n/bogus\n/exit\n")
    assert out.count(f"assistant> {REPLIES['alpha']}") == 2
    assert "(system prompt set)" in out and "(conversation cleared)" in out and "unknown command /bogus" in out


def test_chat_one_shot(tiny_dir, adapters):
    out = run(["chat", "--model", str(tiny_dir), "--adapter", adapters["beta"], "--prompt", QUESTIONS[1]])
    assert f"{REPLIES['beta']}\n" in out  # stderr (load progress, warnings) is mixed into `out`


def test_adapter_may_name_the_run_directory(tiny_dir, adapters):
    from pathlib import Path

    run_dir = Path(adapters["beta"]).parent  # as `eval --adapter` takes it: the run, for its final/
    out = run(["chat", "--model", str(tiny_dir), "--adapter", str(run_dir), "--prompt", QUESTIONS[1]])
    assert f"{REPLIES['beta']}\n" in out


def test_generate_writes_in_order_and_resumes(tiny_dir, adapters, tmp_path):
    data = tmp_path / "in.jsonl"
    rows = [{"id": f"q{i}", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "ref"}]}
            for i, q in enumerate(QUESTIONS * 2)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    args = ["generate", str(data), "-o", str(out), "--model", str(tiny_dir), "--adapter", adapters["alpha"],
            "--max-new-tokens", "20"]
    assert "6 replies generated, 0 already there" in run(args)
    first = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in first] == [f"q{i}" for i in range(6)]
    assert all(r["reply"] == REPLIES["alpha"] and r["reference"] == "ref" for r in first)
    # An interrupted run: two complete lines and half of the third survive.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:10])
    assert "4 replies generated, 2 already there" in run(args)
    assert [json.loads(line) for line in out.read_text().splitlines()] == first
    assert "0 replies generated, 6 already there" in run(args)


def test_export_prints_the_parity_check(tiny_dir, adapters, tmp_path):
    out = run(["export", "--model", str(tiny_dir), "--adapter", adapters["beta"], "--out", str(tmp_path / "m"),
               "--merge", "--dtype", "float32"])
    assert "exported merged model (float32)" in out and "parity: max |logit difference|" in out


def test_serve_rejects_malformed_adapter_options():
    result = CliRunner().invoke(app, ["serve", "--adapter", "no-equals-sign"])
    assert result.exit_code != 0 and "NAME=PATH" in str(result.exception)


def test_vllm_command_serves_lora_adapters_by_name(tiny_dir, adapters):
    from tuneforge.serve.vllm_backend import vllm_command

    argv = vllm_command(str(tiny_dir), adapters, host="127.0.0.1", port=8001, api_key="k",
                        served_model_name=None, dtype="auto")
    assert argv[argv.index("--model") + 1] == str(tiny_dir)
    assert argv[argv.index("--lora-modules") + 1:] == [f"{n}={p}" for n, p in adapters.items()]
    assert "--enable-lora" in argv and argv[argv.index("--api-key") + 1] == "k"


def test_serve_passes_the_prompts_limit_to_the_server(monkeypatch):
    import tuneforge.serve.engine
    import tuneforge.serve.server

    served = {}
    monkeypatch.setattr(tuneforge.serve.engine, "load_engine", lambda *a, **kw: type("E", (), {"model_ids": ["m"]})())
    monkeypatch.setattr(tuneforge.serve.server, "serve", lambda engine, **options: served.update(options))
    run(["serve", "--model", "m", "--max-prompts", "3"])
    assert served["max_prompts"] == 3
    run(["serve", "--model", "m"])
    assert served["max_prompts"] == 64
