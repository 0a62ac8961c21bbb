"""`tuneforge data generate RECIPE.yaml`: make training data with a teacher LLM (self_instruct, evolve,
distill, preferences) behind any OpenAI-compatible endpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

from tuneforge.cli.progress import Clock, ProgressDisplay, RecentRate, duration, speed


class GenerateProgress(ProgressDisplay):
    """A rich bar with requests/s, completion tokens/s, failures and ETA (plain lines off a terminal,
    every 10 seconds and at the end)."""

    def __init__(self, console: Console, mode: str, *, clock: Clock = time.monotonic):
        super().__init__(console, (TextColumn(f"[bold]{mode}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                                   TextColumn("{task.fields[stats]}")), clock, line_fraction=1.0, line_seconds=10.0)
        self.mode = mode
        self.task = self.progress.add_task(mode, total=None, stats="")
        self.rate = RecentRate()  # requests and tokens
        self.units = RecentRate()  # the mode's own units (kept examples, prompts), for the ETA
        self.last_line = 0.0

    def __call__(self, done: int, total: int, usage: dict[str, int]) -> None:
        now = self.clock()
        self.rate.add(now, usage.get("requests", 0), usage.get("completion_tokens", 0))
        per_s = self.rate.per_second()
        req_s, tok_s = per_s if per_s else (0.0, 0.0)
        self.units.add(now, done)
        eta = duration(0.0 if done >= total else self.units.eta(total))
        stats = (f"{speed(req_s)} req/s · {speed(tok_s)} tok/s · {usage.get('cached', 0)} cached · "
                 f"{usage.get('failed', 0)} failed · eta {eta}")
        if self.live:
            self.progress.update(self.task, completed=done, total=total, stats=stats)
        elif now - self.last_line >= self.line_seconds or done >= total:
            self.last_line = now
            self.console.print(f"{self.mode} {done}/{total} · {stats}", markup=False, highlight=False)


def generate(
    recipe: Annotated[Path, typer.Argument(help="Generation recipe YAML (see examples/generate/).")],
    output_dir: Annotated[Optional[Path], typer.Option(
        "--output-dir", "-o", help="Override the recipe's output_dir.")] = None,
) -> None:
    """Make training data with a teacher LLM: self_instruct (new tasks from seed tasks, near-copies removed by
    ROUGE-L), evolve (Evol-Instruct rewrites), distill (n samples per prompt, best by a reward or a judge) or
    preferences (candidates ranked by a judge into chosen/rejected). Writes data.jsonl, rejects.jsonl,
    stats.json and report.html. Rerunning the same recipe resumes: answered requests come from the response
    cache and records already written are not written again."""
    from tuneforge.datagen import generate as run_generate
    from tuneforge.datagen import load_recipe

    loaded = load_recipe(recipe, {"output_dir": str(output_dir.resolve())} if output_dir else None)
    console = Console(stderr=True)
    with GenerateProgress(console, loaded.mode) as progress:
        stats = run_generate(loaded, progress)
    removed = ", ".join(f"{k} {v}" for k, v in sorted(stats["removed"].items(), key=lambda kv: -kv[1])) or "none"
    usage = stats["usage"]
    typer.echo(f"{stats['in']} in = {stats['kept']} kept + {sum(stats['removed'].values())} removed "
               f"({removed}) + {stats['failed']} failed · {usage.get('requests', 0)} requests sent, "
               f"{usage.get('cached', 0)} from cache · {loaded.output_dir}")
