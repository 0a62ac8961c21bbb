"""`tuneforge data ...`: convert, show (and curate / report)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer
from rich.console import Console
from rich.table import Table

from tuneforge.cli.common import ColumnOption, FormatOption, pairs
from tuneforge.config import DataConfig, DatasetConfig
from tuneforge.io import FORMATS, ReadReport
from tuneforge.io import convert as convert_data

app = typer.Typer(help="Read, convert and inspect datasets.", no_args_is_help=True)
console = Console()

# Choices built from the registry, so a new format shows up in --help by itself.
OutputFormat = Literal[tuple(FORMATS)]  # type: ignore[valid-type]


@app.command()
def convert(
    inputs: list[str] = typer.Argument(
        ..., show_default=False,
        help="Files (.json .jsonl .csv .parquet .txt, optionally .gz), folders, globs, HF save_to_disk "
             "directories, or `dataset_info.json#name` entries of LLaMA-Factory."),
    output: Path = typer.Option(..., "--output", "-o", show_default=False,
                                help="Output file: .jsonl, .json, .parquet, .jsonl.gz or .json.gz."),
    format: FormatOption = "auto",
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
    column: ColumnOption = None,
    split: str | None = typer.Option(None, "--split", help="Split of a HF datasets directory; by default train."),
) -> None:
    """Convert datasets between formats, e.g. alpaca .json -> canonical .jsonl, and back."""
    data = DataConfig(
        datasets=[DatasetConfig(path=inputs, format=format, columns=pairs(column, "--column"), split=split)],
        placeholders=pairs(set_placeholder, "--set-placeholder"),
        on_error=on_error,
        rejects_path=str(rejects) if rejects else None,
    )
    report, written = convert_data(data, output, to=to)
    console.print(summary(report, written, output))


def summary(report: ReadReport, written: int, output: Path) -> Table:
    table = Table(title="data convert", show_header=False, title_justify="left")
    # Labels and counts never wrap; the detail column folds long paths rather than cutting them to "…".
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(overflow="fold")
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
