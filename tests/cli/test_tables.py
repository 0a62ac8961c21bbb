"""The tables commands print stay readable in an 80-column terminal: no value cut to "…", no
column squeezed to a sliver."""

import io
import re
from collections import Counter
from pathlib import Path

from rich.console import Console

from tuneforge.io import ReadReport

LONG = "/home/someone/projects/customer-support/data/exports/2024-06/customer_questions_export.jsonl"


def render(*renderables) -> str:
    console = Console(width=80, record=True, file=io.StringIO())
    for r in renderables:
        console.print(r)
    return console.export_text()


def assert_readable(text: str, *whole: str) -> None:
    assert "…" not in text, text
    assert max(map(len, text.splitlines())) <= 80
    for phrase in whole:  # labels and short values appear on one line, unwrapped
        assert phrase in text, (phrase, text)
    # No column narrower than 3 characters between two vertical rules.
    for line in text.splitlines():
        assert not re.search(r"[│┃] ?\S? ?[│┃]", line.replace("│ │", "")), line


def test_convert_summary():
    from tuneforge.cli.data import summary

    report = ReadReport()
    report.read, report.kept, report.samples = 91, 90, 90
    report.rejected = Counter({"missing_output": 1})
    report.first_rejected_at = {"missing_output": f"{LONG}:17"}
    report.unfilled = Counter({"name": 77})
    text = render(summary(report, 90, Path(LONG)))
    assert_readable(text, "records read", "missing_output", "--set-placeholder name=VALUE")
    assert "".join(text.split()).count("customer_questions_export.jsonl") >= 2  # folded, whole


def test_doctor_tables():
    from tuneforge.cli.doctor import length_table, summary_table
    from tuneforge.doctor import DoctorReport

    report = DoctorReport(
        model=LONG.replace(".jsonl", ""), template="auto", cutoff_len=512, cutoff_policy="truncate", samples=1000,
        kept=990, truncated=3, dropped={"too_long": 7, "template_mismatch": 3}, read_rejected=0,
        length_percentiles={"p50": 120, "p95": 480, "max": 2048}, over_cutoff=10,
        histogram=[(0, 205, 700), (205, 410, 250), (410, 615, 40), (615, 2048, 10)], trained_fraction=0.6,
        stop_trained=990, pad_token="<|im_end|>", eos_token="<|im_end|>")
    text = render(summary_table(report), length_table(report))
    assert_readable(text, "over the cutoff (untruncated)", "dropped: template_mismatch",
                    "'<|im_end|>' / '<|im_end|>'", "◀ cutoff")


def test_report_summary():
    from tuneforge.curate.report import print_summary

    d = {"records": 3, "kinds": {"chat": 3}, "tasks": {"-": 3}, "languages": {"en": 2, "zh": 1},
         "chars": {"p50": 10, "p95": 20, "max": 30}, "tokens": None, "exact_duplicate_rate": 0.0,
         "near_duplicate_rate": 0.0, "refusal_rate": 0.0, "machine_text_rate": 0.0, "empty_answer_rate": 0.0,
         "pii_hits": {"email": 2}, "role_orders": {"system→user→assistant→user→assistant": 3},
         "system_prompts": 1, "json_answers": {"looks_like_json": 0, "valid": 0, "validity_rate": None},
         "labels": {LONG: 3}}
    console = Console(width=80, record=True, file=io.StringIO())
    print_summary(d, console)
    text = console.export_text()
    assert_readable(text, "exact / near duplicates", "system prompt variants")
    assert "customer_questions_export.jsonl" in "".join(text.split())


def test_models_table():
    from tuneforge.cli.models import alias_table
    from tuneforge.models.aliases import ALIASES

    table = alias_table()
    table.add_row("a-long-model-alias-name", "[red]missing[/]: pip install --no-deps llm-some-model==0.1.2",
                  "A description long enough that it has to wrap over several lines of the table.")
    assert_readable(render(table), "a-long-model-alias-name", *(a.name for a in ALIASES.values()))
