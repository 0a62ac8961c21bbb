"""`--format` and `--column` read the same way in every command that reads data files."""

import json

import pytest
from typer.testing import CliRunner

from tuneforge.cli import app

runner = CliRunner()
COLUMNS = ["--column", "instruction=Frage", "--column", "output=Antwort Text"]


@pytest.fixture
def odd_csv(tmp_path):
    """Alpaca data under column names no reader would guess."""
    path = tmp_path / "faq.csv"
    path.write_text("Frage,Antwort Text\nWhat is two plus two?,It is four.\nCapital of France?,Paris.\n"
                    "Say hello,Hello there!\n", encoding="utf-8")
    return path


def test_convert_reads_odd_columns(odd_csv, tmp_path):
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["data", "convert", str(odd_csv), "-o", str(out), "-f", "alpaca", *COLUMNS])
    assert result.exit_code == 0, result.output
    first = json.loads(out.read_text().splitlines()[0])
    assert [m["content"] for m in first["messages"]] == ["What is two plus two?", "It is four."]


def test_report_reads_odd_columns(odd_csv, tmp_path):
    out = tmp_path / "d.json"
    result = runner.invoke(app, ["data", "report", str(odd_csv), "-f", "alpaca", *COLUMNS, "--json", str(out)])
    assert result.exit_code == 0, result.output
    d = json.loads(out.read_text())
    assert d["records"] == 3 and d["role_orders"] == {"user→assistant": 3}
    # Without the mapping the file is not alpaca: an error, not a silent misreading.
    assert runner.invoke(app, ["data", "report", str(odd_csv), "-f", "alpaca"]).exit_code != 0


def test_doctor_reads_odd_columns(odd_csv, tiny_model_dir, tmp_path):
    out = tmp_path / "doctor.json"
    result = runner.invoke(app, ["doctor", str(odd_csv), "-m", str(tiny_model_dir), "-f", "alpaca", *COLUMNS,
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["samples"] == report["kept"] == 3 and report["trained_fraction"] > 0


def test_doctor_applies_format_and_columns_to_a_yaml_configs_datasets(odd_csv, tiny_model_dir, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {{name_or_path: {tiny_model_dir}}}\ndata:\n  datasets:\n    - path: faq.csv\n"
                      "      columns: {instruction: Frage}\n")
    out = tmp_path / "doctor.json"
    result = runner.invoke(app, ["doctor", str(config), "-f", "alpaca", "--column", "output=Antwort Text",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["kept"] == 3


def test_a_column_without_equals_is_a_usage_error(odd_csv):
    result = runner.invoke(app, ["data", "report", str(odd_csv), "--column", "output"])
    assert result.exit_code == 2 and "NAME=VALUE" in result.output
