"""`tuneforge train` and `tuneforge runs`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from tuneforge.cli.common import ThreadsOption
from tuneforge.cli.progress import TrainingProgress, duration


def train(
    config: Annotated[Path, typer.Argument(help="YAML config with model, data, template, method, train sections.")],
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a key: train.learning_rate=1e-4.")] = None,
    resume: Annotated[Optional[str], typer.Option(help="'auto' (newest checkpoint) or a checkpoint directory.")] = None,
    allow_config_change: Annotated[Optional[list[str]], typer.Option(
        "--allow-config-change", metavar="KEY",
        help="On resume, let this changed key through (train.learning_rate, train.max_steps, train.epochs, "
             "train.eval_every, ...); batch, cutoff, data, method, model and seed never change mid-run.")] = None,
    threads: ThreadsOption = None,
) -> None:
    """Fine-tune a model (train.stage: sft, pt, dpo, kto, orpo, simpo, grpo) and write a run directory."""
    from tuneforge.config import load_config
    from tuneforge.threads import use_threads
    from tuneforge.train.run import is_main_process, run_training

    use_threads(threads)
    overrides = list(set_ or []) + ([f"train.resume={resume}"] if resume else [])
    cfg = load_config(config, overrides)
    console = Console(quiet=not is_main_process())  # under a launcher, one process reports
    with TrainingProgress(console) as progress:
        summary = run_training(cfg, on_log=progress.update, on_start=progress.start,
                               allow_changes=allow_config_change or ())
    loss = summary.final_loss
    console.print(f"[green]done[/] in {summary.seconds:.0f}s · {summary.result.state.step} steps · "
                  f"final loss {float('nan') if loss is None else loss:.4f} · artefact {summary.final_dir}")
    if summary.result.interrupted:
        console.print("[yellow]interrupted[/]: a checkpoint was written; continue with --resume auto")


def count(n: int) -> str:
    """1,234 · 1.47M · 135M: a parameter count at a glance."""
    if n < 100_000:
        return f"{n:,}"
    return f"{n / 1e6:.3g}M" if n < 1e9 else f"{n / 1e9:.3g}B"


def runs(
    root: Annotated[Path, typer.Argument(help="Folder holding run directories.")] = Path("runs"),
) -> None:
    """List runs with their key figures (from each run's manifest.json)."""
    # Figures never wrap (a cut number misleads); names and paths fold, so 80 columns stay readable.
    table = Table(title=f"runs in {root}", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("run", overflow="fold")
    table.add_column("method", overflow="fold")
    table.add_column("model", overflow="fold")
    for col in ("steps", "loss", "eval", "trainable", "time"):
        table.add_column(col, justify="right", no_wrap=True)
    for manifest_path in sorted(root.glob("**/manifest.json")):
        m = json.loads(manifest_path.read_text())
        r, p = m.get("result", {}), m.get("parameters", {})
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        table.add_row(str(manifest_path.parent.relative_to(root)), f"{m.get('stage', '?')} {m.get('method', '?')}",
                      Path(m.get("model", "?")).name, str(r.get("steps")), fmt(r.get("final_loss")),
                      fmt(r.get("best_eval")), count(p.get("trainable", 0)), duration(m.get("cost", {}).get("seconds")))
    Console().print(table)
