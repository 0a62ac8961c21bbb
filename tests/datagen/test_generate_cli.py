"""`tuneforge data generate` from the command line: kill -9 in the middle of a run and resume (no request
answered twice, no record written twice), and endpoint faults that stop a run with one line naming what
to fix while keeping what was generated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import yaml
from datagen_helpers import read_jsonl, teacher
from stub_llm import StubLLM

from tuneforge.cli import main


def write_recipe(tmp_path, url: str, prompts: int, **teacher_extra) -> str:
    (tmp_path / "prompts.txt").write_text("".join(f"Question number {i}?\n" for i in range(prompts)))
    recipe = {"mode": "distill", "teacher": teacher(url, **teacher_extra), "output_dir": "out",
              "distill": {"prompts": "prompts.txt", "samples": 2}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def test_kill_9_then_resume_sends_no_answered_request_again(stub, tmp_path):
    recipe = write_recipe(tmp_path, stub.url, 30)
    stub.hold_after = 12  # then every request hangs until the run is killed
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "tuneforge", "data", "generate", recipe]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while stub.held < 1 or len(stub.answered) < 12:
        assert first.poll() is None and time.monotonic() < deadline, first.stdout.read() if first.stdout else ""
        time.sleep(0.05)
    time.sleep(0.5)  # the answered replies reach the cache and the output
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    written = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert 0 < len(written) < 60
    stub.hold_after = None
    stub.release.set()  # the held requests end unanswered
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(stub.answered) == 30 and max(Counter(stub.answered).values()) == 1  # no paid request twice
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(records) == 60 and len({r["id"] for r in records}) == 60
    assert records[:len(written)] == written  # appended to, never rewritten
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert (stats["in"], stats["kept"], stats["failed"], stats["resumed_records"]) == (60, 60, 0, len(written))
    assert stats["usage"]["cached"] >= 12 and "60 in = 60 kept + 0 removed" in done.stdout


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["tuneforge", *args])
    with pytest.raises(SystemExit) as e:
        main()
    return int(e.value.code or 0), capsys.readouterr().err


def test_a_refused_key_stops_with_one_line_naming_the_variable_and_keeps_what_was_made(tmp_path, monkeypatch,
                                                                                         capsys):
    server = StubLLM(api_key="good")
    try:
        recipe = write_recipe(tmp_path, server.url, 4, api_key_env="GEN_KEY")
        monkeypatch.setenv("GEN_KEY", "good")
        assert cli(monkeypatch, capsys, "data", "generate", recipe)[0] == 0
        write_recipe(tmp_path, server.url, 8, api_key_env="GEN_KEY")  # four more prompts
        monkeypatch.setenv("GEN_KEY", "bad-secret")
        code, err = cli(monkeypatch, capsys, "data", "generate", recipe)
        err = " ".join(err.split())  # the red line wraps at the terminal's width
        assert code == 2 and "$GEN_KEY" in err and "API key was refused" in err and "bad-secret" not in err
        assert err.count("error:") == 1 and "Traceback" not in err
        assert len(read_jsonl(tmp_path / "out" / "data.jsonl")) == 8  # the first four prompts' samples
        stats = json.loads((tmp_path / "out" / "stats.json").read_text())
        assert stats["complete"] is False and "$GEN_KEY" in stats["error"] and stats["usage"] == {}
    finally:
        server.close()


def test_an_unknown_model_and_an_unreachable_endpoint_name_what_to_fix(stub, tmp_path, monkeypatch, capsys):
    recipe = write_recipe(tmp_path, stub.url, 2, model="no-such-model")
    code, err = cli(monkeypatch, capsys, "data", "generate", recipe)
    err = " ".join(err.split())  # the red line wraps at the terminal's width
    assert code == 2 and "model 'no-such-model' is not served" in err and stub.url in err
    recipe = write_recipe(tmp_path, "http://127.0.0.1:9/v1", 2, retries=0)
    code, err = cli(monkeypatch, capsys, "data", "generate", recipe)
    assert code == 2 and "cannot reach http://127.0.0.1:9/v1" in " ".join(err.split())
