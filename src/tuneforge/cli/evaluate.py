"""`tuneforge eval`: metrics, loss and a report for one model (+ a trained artefact) on an eval set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from tuneforge.cli.common import ThreadsOption


def summary_table(console: Console, title: str, runs) -> Table:
    """One row per strategy (its metrics, then its costs; a fine-tuned artefact's row is named by the
    artefact); where that does not fit the terminal, one column per strategy and a row per figure, so that
    no number is cut."""
    metrics = list(runs[0].scores)
    extras = sorted({k for r in runs for k, v in r.extra.items() if isinstance(v, (int, float))})
    figures = [*metrics, *extras, "s/query", "prompt tok/query"]
    fmt = lambda v: "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    values = [[*[fmt(r.scores[m]) for m in metrics], *[fmt(r.extra.get(k)) for k in extras],
               f"{r.seconds_per_query:.2f}", f"{r.prompt_tokens_per_query:.0f}"] for r in runs]
    wide = Table(title=title)
    wide.add_column("strategy", overflow="fold")
    for col in figures:
        wide.add_column(col, justify="right", no_wrap=True)
    for r, row in zip(runs, values):
        wide.add_row(r.name, *row)
    if Measurement.get(console, console.options.update_width(1 << 16), wide).maximum <= console.width:
        return wide
    tall = Table(title=title)
    tall.add_column("figure", no_wrap=True)
    for r in runs:
        tall.add_column(r.name, justify="right", overflow="fold")
    for i, figure in enumerate(figures):
        tall.add_row(figure, *[row[i] for row in values])
    return tall


def evaluate(
    config: Annotated[Path, typer.Argument(help="YAML config: model, template and the eval section.")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a key: eval.limit=20.")] = None,
    adapter: Annotated[Optional[str], typer.Option(
        help="A trained artefact of any method (a run directory or its final/); sets eval.adapter.")] = None,
    threads: ThreadsOption = None,
) -> None:
    """Evaluate a model (+ a trained artefact) on eval.datasets: reference loss and perplexity, batched
    generation, metrics (exact_match, contains, rouge_l, bleu, chrf, json_valid, json_schema, regex, refusal,
    length, your own `module:function`), optional LLM judge; writes results.jsonl, summary.json, report.html."""
    from tuneforge.cli.progress import TaskProgress
    from tuneforge.config import load_config
    from tuneforge.eval.runner import run_eval
    from tuneforge.threads import use_threads

    use_threads(threads)
    overrides = list(set_ or []) + ([f"eval.adapter={adapter}"] if adapter else [])
    cfg = load_config(config, overrides)
    console = Console()
    console.print(f"evaluating {cfg.model.name_or_path}{' + ' + cfg.eval.adapter if cfg.eval.adapter else ''} on "
                  f"{len(cfg.eval.datasets)} eval dataset(s)", highlight=False)
    with TaskProgress(console) as progress:
        run = run_eval(cfg, on_progress=progress)
    console.print(summary_table(console, f"{len(run.rows)} samples", [run]))
    for note in run.notes:
        console.print(f"[yellow]note[/]: {note}")
    console.print(f"results, summary and report.html in {cfg.eval.output_dir}")
