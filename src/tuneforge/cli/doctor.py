"""`tuneforge doctor`: pre-flight checks of data + model + template before training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from tuneforge.cli.common import ColumnOption, FormatOption, config_from, pairs

if TYPE_CHECKING:
    from tuneforge.doctor import DoctorReport

STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def doctor(
    config_or_data: Annotated[list[str], typer.Argument(help="A YAML config, or data files / folders / globs.")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model whose tokenizer to use.")] = None,
    template: Annotated[Optional[str], typer.Option(help="Chat template (auto = the tokenizer's own).")] = None,
    cutoff: Annotated[Optional[int], typer.Option(help="Maximum tokens per sample (template.cutoff_len).")] = None,
    format: FormatOption = "auto",
    column: ColumnOption = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: a.b=value.")] = None,
    out: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("doctor.json"),
) -> None:
    """Token lengths, cutoff losses, fully-masked samples, EOS training, pad == eos, template round
    trips, templates that drop tool calls / tools / content, unfilled {{placeholders}}, a default system
    prompt that contradicts the data, following the stage (pt packs documents, nothing is cut): as a
    table and a JSON file. Exits with 1
    when it finds an error. With a YAML config, --format and --column apply to every entry of its
    data.datasets (flags win over the file, as --model does; columns merge over an entry's own)."""
    from tuneforge.doctor import run_doctor

    cfg = config_from(config_or_data, model=model, template=template, cutoff=cutoff, overrides=set_ or [],
                      format=format, columns=pairs(column, "--column"))
    report = run_doctor(cfg)
    console = Console()

    console.print(summary_table(report))
    console.print(length_table(report))
    for f in report.findings:
        console.print(f"[{STYLE[f.level]}]{f.level:>7}[/] {f.code}: {f.message}", highlight=False)
    out.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    console.print(f"report written to {out}")
    if not report.ok:
        raise typer.Exit(1)


def summary_table(report: DoctorReport) -> Table:
    table = Table(title=f"doctor: {report.model} · template {report.template} · cutoff {report.cutoff_len}")
    # Check names never wrap; a long value (a token, a path) folds instead of being cut to "…".
    table.add_column("check", no_wrap=True)
    table.add_column("value", justify="right", overflow="fold")
    rows = [("samples read", report.samples), ("kept", report.kept), ("truncated", report.truncated),
            *((f"dropped: {k}", v) for k, v in report.dropped.items()),
            ("over the cutoff (untruncated)", report.over_cutoff),
            *((f"length {k}", v) for k, v in report.length_percentiles.items()),
            ("trained-token fraction", f"{report.trained_fraction:.1%}"),
            ("samples training a stop token", report.stop_trained),
            ("pad / eos", f"{report.pad_token!r} / {report.eos_token!r}")]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def length_table(report: DoctorReport) -> Table:
    hist = Table(title="token lengths (untruncated)")
    for col in ("from", "to", "samples"):
        hist.add_column(col, justify="right", no_wrap=True)
    hist.add_column("", no_wrap=True)
    peak = max((c for *_, c in report.histogram), default=1) or 1
    for lo, hi, count in report.histogram:
        marker = " ◀ cutoff" if lo <= report.cutoff_len < hi else ""
        hist.add_row(str(lo), str(hi), str(count), "█" * round(30 * count / peak) + marker)
    return hist
