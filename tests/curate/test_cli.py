"""`curate` and `report` commands end to end on the real alpaca demo set, through tuneforge.io."""

from __future__ import annotations

import json

from curate_samples import DATASETS, load_alpaca
from typer.testing import CliRunner

from tuneforge.cli.curate import app


def test_curate_then_report(tmp_path):
    load_alpaca("alpaca_zh_demo.json")  # skips when the shared datasets are absent
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"inputs: [{{path: {DATASETS / 'alpaca_zh_demo.json'}, format: alpaca}}]\n"
        "output: {dir: out}\n"
        "executor: {shard_size: 400}\n"
        "operators: [{op: normalize_unicode}, {op: answer}, {op: pii}, {op: exact_dedup}, {op: minhash_dedup}]\n",
        encoding="utf-8")
    result = CliRunner().invoke(app, ["curate", str(recipe)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["records_in"] == 1000
    assert stats["records_in"] == stats["records_out"] + sum(stats["removed"].values())
    assert "<h1>Data report" in (out / "report.html").read_text(encoding="utf-8")
    first = json.loads((out / "data.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["meta"]["source"].endswith("alpaca_zh_demo.json")

    result = CliRunner().invoke(app, ["report", str(out), "--html", str(tmp_path / "r.html"), "--json", str(tmp_path / "d.json")])
    assert result.exit_code == 0, result.output
    d = json.loads((tmp_path / "d.json").read_text(encoding="utf-8"))
    assert d["records"] == stats["records_out"]
    assert max(d["languages"], key=d["languages"].get) == "zh"
    assert d["exact_duplicate_rate"] == 0.0
