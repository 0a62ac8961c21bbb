"""A rich progress bar for training: loss, learning rate, tokens/s and ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class TrainingProgress:
    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(), console=console, transient=False)
        self.task = None

    def __enter__(self) -> TrainingProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def start(self, n_train: int, params: str) -> None:
        self.console.print(f"{n_train} training items · {params}")

    def update(self, r: dict) -> None:
        if self.task is None:
            self.task = self.progress.add_task("train", total=r["total_steps"], stats="")
        stats = f"loss {r['loss']:.4f} · lr {r['lr']:.2e} · {r['tokens_per_s']:.0f} tok/s"
        stats += "".join(f" · {k[5:]} {v:.4f}" for k, v in r.items() if k.startswith("eval_"))
        if "reward_accuracy" in r:
            stats += f" · acc {r['reward_accuracy']:.2f} · margin {r['reward_margin']:.3f}"
        self.progress.update(self.task, completed=r["step"], stats=stats)
