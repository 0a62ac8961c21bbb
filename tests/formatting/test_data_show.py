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
    path = write(tmp_path, [{"messages": [{"role": "user", "content": "q"},
                                          {"role": "assistant", "content": "a" * 50}]}])
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


def test_show_reads_odd_columns_with_format_and_column(app, tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text("Frage,Antwort Text\nSay hi,hi\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["show", str(path), "--template", "chatml", "-f", "alpaca",
                                      "--column", "instruction=Frage", "--column", "output=Antwort Text"])
    assert result.exit_code == 0, result.output
    assert "Say hi<|im_end|>" in result.output and "│ hi<|im_end|>" in result.output


def test_show_stays_readable_at_80_columns(app, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    folder = tmp_path / "a-fairly-long-folder-name" / "with-another-level-of-nesting"
    folder.mkdir(parents=True)
    path = folder / "customer_questions_export.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "a"}]}) + "\n")
    result = CliRunner().invoke(app, ["show", str(path), "--template", "chatml"])
    assert result.exit_code == 0, result.output
    assert max(map(len, result.output.splitlines())) <= 80
    assert "…" not in result.output
    # The counts are in the panel's title, the source (folded, not cut) inside it.
    assert "#1 · chat · " in result.output and "trained" in result.output.splitlines()[0]
    assert "records rejected while reading" in result.output and "dim ones are given" in result.output


def test_show_flags_unfilled_placeholders(app, tmp_path):
    path = write(tmp_path, [{"messages": [{"role": "user", "content": "Who are you?"},
                                          {"role": "assistant", "content": "I am {{name}}."}]},
                            {"messages": [{"role": "user", "content": "Hi"},
                                          {"role": "assistant", "content": "{{name}} here."}]}])
    result = CliRunner().invoke(app, ["show", path, "--template", "chatml"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "placeholder" in result.output and "2 samples still hold {{name}}" in result.output
