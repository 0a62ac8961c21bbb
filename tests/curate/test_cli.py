"""`curate` and `report` commands end to end on the real alpaca demo set, through tuneforge.io."""

from __future__ import annotations

import json

from curate_samples import DATASETS, load_alpaca
from typer.testing import CliRunner

from tuneforge.cli import app


def test_curate_then_report(tmp_path):
    load_alpaca("alpaca_zh_demo.json")  # skips when the shared datasets are absent
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"inputs: [{{path: {DATASETS / 'alpaca_zh_demo.json'}, format: alpaca}}]\n"
        "output: {dir: out}\n"
        "executor: {shard_size: 400}\n"
        "operators: [{op: normalize_unicode}, {op: answer}, {op: pii}, {op: exact_dedup}, {op: minhash_dedup}]\n",
        encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "curate", str(recipe)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["records_in"] == 1000
    assert stats["records_in"] == stats["records_out"] + sum(stats["removed"].values())
    assert "<h1>Data report" in (out / "report.html").read_text(encoding="utf-8")
    first = json.loads((out / "data.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["meta"]["source"].endswith("alpaca_zh_demo.json")

    result = CliRunner().invoke(app, ["data", "report", str(out), "--html", str(tmp_path / "r.html"),
                                      "--json", str(tmp_path / "d.json")])
    assert result.exit_code == 0, result.output
    d = json.loads((tmp_path / "d.json").read_text(encoding="utf-8"))
    assert d["records"] == stats["records_out"]
    assert max(d["languages"], key=d["languages"].get) == "zh"
    assert d["exact_duplicate_rate"] == 0.0


def test_curate_dirty_input_with_skip_and_raise(tmp_path):
    (tmp_path / "raw.jsonl").write_text('{"text": "a first document"}\n{"text": \n{"text": "a second document"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text("inputs: [{path: raw.jsonl, on_error: skip}]\noutput: {dir: out, report: false}\n"
                      "operators: [{op: exact_dedup}]\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "curate", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "3 in, 2 kept" in result.output and "rejected      1  malformed JSON" in result.output
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["records_in"] == 3 == (stats["records_out"] + sum(stats["removed"].values())
                                        + sum(stats["rejected"].values()))
    [reject] = [json.loads(line) for line in (tmp_path / "out" / "read_rejects.jsonl").read_text().splitlines()]
    assert (reject["source"], reject["line"]) == (str(tmp_path / "raw.jsonl"), 2)

    recipe.write_text(recipe.read_text().replace("on_error: skip", "on_error: raise"), encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "curate", str(recipe), "--fresh"])
    assert result.exit_code != 0
    assert str(result.exception).startswith(f"{tmp_path / 'raw.jsonl'}:2: malformed JSON")
