"""`tuneforge data show`: samples as the model sees them, trained runs styled, counts printed."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from tuneforge.cli import data_show
from tuneforge.formatting import IGNORE


@pytest.fixture
def app(char_tokenizer, monkeypatch):
    import tuneforge.models

    monkeypatch.setattr(tuneforge.models, "load_tokenizer", lambda name: char_tokenizer)
    app = typer.Typer()
    app.command()(data_show.show)
    app.command("other")(lambda: None)  # two commands, so `show` is addressed by name as under `data`
    return app


def write(tmp_path, records) -> str:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def test_show_prints_samples_and_counts(app, tmp_path):
    path = write(tmp_path, [
        {"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "巴黎。"}]},
        {"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "third"}, {"role": "assistant", "content": "not shown"}]},
    ])
    result = CliRunner().invoke(app, ["show", path, "--n", "2", "--template", "chatml"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<|im_start|>user" in result.output and "Capital of France?<|im_end|>" in result.output
    assert "巴黎。<|im_end|>" in result.output
    assert "#1 · " in result.output and "#2 · " in result.output and "not shown" not in result.output
    assert "2 of 3" in result.output and "template chatml" in result.output


def test_show_reports_dropped_samples(app, tmp_path):
    path = write(tmp_path, [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a" * 50}]}])
    result = CliRunner().invoke(app, ["show", path, "--template", "chatml", "--cutoff", "20"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "dropped: too_long" in result.output


def test_show_preference_pairs(app, tmp_path):
    path = write(tmp_path, [{"prompt": "q?", "chosen": "good", "rejected": "bad"}])
    result = CliRunner().invoke(app, ["show", path, "--template", "chatml"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for part in ("prompt", "chosen", "rejected", "good<|im_end|>", "bad<|im_end|>"):
        assert part in result.output


def test_highlight_styles_exactly_the_trained_runs(char_tokenizer, char_ids):
    ids = char_ids("ab<|im_end|>cd")
    labels = [IGNORE, IGNORE, *ids[2:4], IGNORE]
    text = data_show._highlight(char_tokenizer, ids, labels)
    assert text.plain == "ab<|im_end|>cd"
    styled = [(text.plain[s.start:s.end], str(s.style)) for s in text.spans]
    assert styled == [("ab", data_show.GIVEN), ("<|im_end|>c", data_show.TRAINED), ("d", data_show.GIVEN)]
