"""`tuneforge data ...`: convert, show (and curate / report)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer
from rich.console import Console
from rich.table import Table

from tuneforge.config import DataConfig, DatasetConfig
from tuneforge.io import FORMATS, ReadReport, convert as convert_data

app = typer.Typer(help="Read, convert and inspect datasets.", no_args_is_help=True)
console = Console()

# Choices built from the registry, so a new format shows up in --help by itself.
InputFormat = Literal[("auto", *FORMATS)]  # type: ignore[valid-type]
OutputFormat = Literal[tuple(FORMATS)]  # type: ignore[valid-type]


@app.command()
def convert(
    inputs: list[str] = typer.Argument(
        ..., show_default=False,
        help="Files (.json .jsonl .csv .parquet .txt, optionally .gz), folders, globs, HF save_to_disk "
             "directories, or `dataset_info.json#name` entries of LLaMA-Factory."),
    output: Path = typer.Option(..., "--output", "-o", show_default=False,
                                help="Output file: .jsonl, .json, .parquet, .jsonl.gz or .json.gz."),
    format: InputFormat = typer.Option("auto", "--format", "-f",
                               help="Input format; `auto` tells it from the first record of each file."),
    to: OutputFormat = typer.Option("tuneforge", "--to",
                           help="Output format; `tuneforge` is the canonical form (keeps provenance in meta)."),
    on_error: Literal["raise", "skip"] = typer.Option("raise", "--on-error",
                                 help="`raise` stops at the first bad record with file:line; `skip` "
                                      "writes bad records to the rejects file and counts them."),
    rejects: Path | None = typer.Option(None, "--rejects", show_default=False,
                                        help="Rejects file (jsonl) for --on-error skip; by default "
                                             "rejects.jsonl beside the output."),
    set_placeholder: list[str] = typer.Option([], "--set-placeholder", metavar="NAME=VALUE",
                                              help="Fill `{{NAME}}` in the data; repeatable. Once one is "
                                                   "given, every placeholder must have a value."),
    column: list[str] = typer.Option([], "--column", metavar="FIELD=COLUMN",
                                     help="Read our FIELD from the file's COLUMN, e.g. output=answer; repeatable."),
    split: str | None = typer.Option(None, "--split", help="Split of a HF datasets directory; by default train."),
) -> None:
    """Convert datasets between formats, e.g. alpaca .json -> canonical .jsonl, and back."""
    data = DataConfig(
        datasets=[DatasetConfig(path=inputs, format=format, columns=_pairs(column, "--column"), split=split)],
        placeholders=_pairs(set_placeholder, "--set-placeholder"),
        on_error=on_error,
        rejects_path=str(rejects) if rejects else None,
    )
    report, written = convert_data(data, output, to=to)
    console.print(summary(report, written, output))


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=option)
        out[key] = value
    return out


def summary(report: ReadReport, written: int, output: Path) -> Table:
    table = Table(title="data convert", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column()
    table.add_row("records read", str(report.read), "")
    table.add_row("kept", str(report.kept), f"{report.samples} samples")
    for reason, n in report.rejected.most_common():
        table.add_row("[red]rejected[/]", str(n), f"{reason} (first at {report.first_rejected_at[reason]})")
    table.add_row("written", str(written), f"records to {output}")
    if report.n_rejected and report.rejects_path is not None:
        table.add_row("rejects", str(report.n_rejected), f"records to {report.rejects_path}")
    for name, n in report.unfilled.most_common():
        table.add_row("[yellow]placeholder[/]", str(n),
                      f"records still hold {{{{{name}}}}}; fill it with --set-placeholder {name}=VALUE")
    return table
