"""`tuneforge eval`: metrics, loss and a report for one model (+ adapter) on an eval set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table


def summary_table(title: str, runs) -> Table:
    """One row per method: its metrics, then its costs."""
    table = Table(title=title)
    metrics = list(runs[0].scores)
    extras = sorted({k for r in runs for k, v in r.extra.items() if isinstance(v, (int, float))})
    for col in ("method", *metrics, *extras, "s/query", "prompt tok/query"):
        table.add_column(col, justify="left" if col == "method" else "right")
    fmt = lambda v: "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    for r in runs:
        table.add_row(r.name, *[fmt(r.scores[m]) for m in metrics], *[fmt(r.extra.get(k)) for k in extras],
                      f"{r.seconds_per_query:.2f}", f"{r.prompt_tokens_per_query:.0f}")
    return table


def evaluate(
    config: Annotated[Path, typer.Argument(help="YAML config: model, template and the eval section.")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a key: eval.limit=20.")] = None,
    adapter: Annotated[Optional[str], typer.Option(
        help="A run directory or trained artefact (sets eval.adapter).")] = None,
) -> None:
    """Evaluate a model (+ adapter) on eval.datasets: reference loss and perplexity, batched generation,
    metrics (exact_match, contains, rouge_l, bleu, chrf, json_valid, json_schema, regex, refusal, length,
    your own `module:function`), optional LLM judge; writes results.jsonl, summary.json, report.html."""
    from tuneforge.config import load_config
    from tuneforge.eval.runner import run_eval

    overrides = list(set_ or []) + ([f"eval.adapter={adapter}"] if adapter else [])
    cfg = load_config(config, overrides)
    console = Console()
    with console.status(f"evaluating {cfg.model.name_or_path} on {len(cfg.eval.datasets)} eval dataset(s)"):
        run = run_eval(cfg)
    console.print(summary_table(f"{len(run.rows)} samples", [run]))
    for note in run.notes:
        console.print(f"[yellow]note[/]: {note}")
    console.print(f"results, summary and report.html in {cfg.eval.output_dir}")
