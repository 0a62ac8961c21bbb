"""`tuneforge compare`: zero-shot vs few-shot vs RAG vs fine-tuned on the same eval set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console


def compare(
    config: Annotated[Path, typer.Argument(help="YAML config: model, data (few-shot pool), eval (with eval.compare).")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a key: eval.limit=16.")] = None,
) -> None:
    """Run every strategy of eval.compare (and each fine-tuned artefact) on eval.datasets and recommend one:
    quality metrics, latency and prompt tokens per query, training cost from run manifests; writes a bar
    chart and report.html."""
    from tuneforge.cli.evaluate import summary_table
    from tuneforge.cli.progress import TaskProgress
    from tuneforge.config import load_config
    from tuneforge.eval.compare import run_compare
    from tuneforge.threads import use_threads

    use_threads()

    cfg = load_config(config, list(set_ or []))
    console = Console()
    with TaskProgress(console) as progress:
        result = run_compare(cfg, on_progress=progress)
    console.print(summary_table(console, f"{len(result.runs[0].rows)} eval samples · primary metric "
                                         f"{result.primary_metric}", result.runs))
    for run in result.runs:
        for note in run.notes:
            console.print(f"[yellow]{run.name}[/]: {note}")
    console.print(f"[bold green]recommendation: {result.recommendation.strategy}[/]")
    for reason in result.recommendation.reasons:
        console.print(f"  · {reason}")
    console.print(f"report: {result.report}")
