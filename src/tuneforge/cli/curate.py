"""`tuneforge data curate RECIPE.yaml` and `tuneforge data report DATA`: parse, call the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from tuneforge.cli.common import ColumnOption, FormatOption, pairs

console = Console()


def curate(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML: inputs, operators, output, executor.")],
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (overrides executor.workers).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore finished shards of an earlier run.")] = False,
) -> None:
    """Run the recipe's operators; write kept records, rejects.jsonl, stats.json and report.html."""
    from tuneforge.curate import curate as run_recipe
    from tuneforge.curate import load_recipe

    r = load_recipe(recipe)
    stats = run_recipe(r, workers=workers, resume=False if fresh else None)
    console.print(f"[bold]{stats['records_in']}[/] in, [bold green]{stats['records_out']}[/] kept "
                  f"({stats['records_per_second']:.0f} records/s) -> {r.output.dir}")
    for reason, n in stats["removed"].items():
        console.print(f"  removed {n:>7}  {reason}")
    for reason, n in stats["rejected"].items():
        console.print(f"  [red]rejected[/] {n:>6}  {reason} (first at {stats['rejected_first_at'][reason]})")


def report(
    data: Annotated[Path, typer.Argument(help="A dataset file (any format the readers take) or a curate output dir.")],
    model: Annotated[Optional[str], typer.Option(help="Tokenizer (model dir or hub id) for token lengths.")] = None,
    field: Annotated[Optional[str], typer.Option(help="A meta field whose label balance to show.")] = None,
    format: FormatOption = "auto",
    column: ColumnOption = None,
    html: Annotated[Optional[Path], typer.Option(help="Write the HTML report here.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the diagnostics as JSON here.")] = None,
) -> None:
    """Diagnostics: lengths, languages, duplicates, PII, refusals, format consistency, top n-grams."""
    from tuneforge.curate import OUTPUT, read_output
    from tuneforge.curate.recipe import read_dataset
    from tuneforge.curate.report import diagnose, print_summary, render_html

    columns = pairs(column, "--column")
    samples = read_output(data) if (data / OUTPUT).exists() else read_dataset(data, format, columns)
    d = diagnose(samples, tokenizer=model, label_field=field)
    print_summary(d, console)
    if html:
        html.write_text(render_html(d), encoding="utf-8")
    if json_out:
        json_out.write_text(json.dumps(d, indent=2, ensure_ascii=False), encoding="utf-8")
