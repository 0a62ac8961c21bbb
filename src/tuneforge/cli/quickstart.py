"""`tuneforge quickstart`: the main job of the README."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tuneforge.cli.progress import TrainingProgress


def quickstart(
    output_dir: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/quickstart"),
    epochs: Annotated[float, typer.Option(help="Passes over the 240 training notes.")] = 1.0,
) -> None:
    """Fine-tune the offline default model with LoRA to answer weather notes in a fixed JSON shape,
    then compare its answers before and after on held-out notes."""
    from tuneforge import quickstart as qs
    from tuneforge.methods import get_method
    from tuneforge.models import load_model
    from tuneforge.threads import use_threads
    from tuneforge.train.run import run_training

    use_threads()

    console = Console()
    cfg = qs.quickstart_config(str(output_dir), epochs)
    tests = qs.held_out()
    references = [s.messages[-1].content for s in tests]
    console.print(f"[bold]tuneforge quickstart[/]: {cfg.model.name_or_path} + LoRA → JSON weather records\n"
                  f"held-out notes: {len(tests)} (unseen cities and phrasings)")

    base, tokenizer = load_model(cfg.model)
    before = qs.answers(base, tokenizer, tests)
    before_score = qs.score(before, references)
    console.print(f"before: {before_score.compliant:.0%} of replies in the JSON shape")

    with TrainingProgress(console) as progress:
        summary = run_training(cfg, on_log=progress.update, on_start=progress.start)

    tuned = get_method(cfg.method.name).load(base, summary.final_dir)
    after = qs.answers(tuned, tokenizer, tests)
    after_score = qs.score(after, references)

    table = Table(title="held-out notes", show_lines=True)
    for col in ("note", "before", "after"):
        table.add_column(col, overflow="fold")
    for sample, b, a in list(zip(tests, before, after))[:4]:
        table.add_row(sample.messages[0].content, b, a)
    console.print(table)
    console.print(f"[bold]format compliance[/] {before_score.compliant:.0%} → {after_score.compliant:.0%} · "
                  f"[bold]all fields right[/] {before_score.correct:.0%} → {after_score.correct:.0%} · "
                  f"trained {summary.result.state.step} steps in {summary.seconds:.0f}s · adapter in "
                  f"{summary.final_dir} (loads with peft.PeftModel.from_pretrained)")
