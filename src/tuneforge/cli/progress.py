"""Progress a person can trust, for every long command.

Rates and ETAs come from the recent past (the last records, by wall time), so the slow first steps
(allocation, kernel selection, caches filling) leave the figure instead of weighing on it for the
whole run. On a terminal a live rich bar shows them; when output goes to a file or a CI log, where a
live bar shows nothing until it ends, one plain line is printed every tenth of the work or every
30 seconds, whichever comes first, and always at the end.

The library reports through plain callbacks (`on_log(record)` for training, `on_progress(what, done,
total)` for evaluation, comparison, generation and indexing); only this module knows about rich.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

Clock = Callable[[], float]


def duration(seconds: float | None) -> str:
    """45s, 3m10s, 2h05m; '-' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def speed(per_second: float) -> str:
    """812, 50, 3.3: whole numbers once the decimals stop mattering."""
    return f"{per_second:.0f}" if per_second >= 10 else f"{per_second:.1f}"


class RecentRate:
    """Work per second over a moving window: the last `points` records, none older than `seconds`
    (but always the last two), measured by wall time between records."""

    def __init__(self, points: int = 21, seconds: float = 60.0):
        self.window: deque[tuple[float, float, float]] = deque(maxlen=points)  # (time, done, tokens so far)
        self.seconds = seconds

    def add(self, now: float, done: float, tokens: float = 0.0) -> None:
        self.window.append((now, done, tokens))
        while len(self.window) > 2 and now - self.window[0][0] > self.seconds:
            self.window.popleft()

    def per_second(self) -> tuple[float, float] | None:
        """(done per second, tokens per second) across the window; None before two records."""
        if len(self.window) < 2:
            return None
        (t0, d0, k0), (t1, d1, k1) = self.window[0], self.window[-1]
        if t1 <= t0:
            return None
        return (d1 - d0) / (t1 - t0), (k1 - k0) / (t1 - t0)

    def eta(self, total: float) -> float | None:
        rate = self.per_second()
        if rate is None or rate[0] <= 0:
            return None
        return (total - self.window[-1][1]) / rate[0]


class LineThrottle:
    """When a plain progress line is due: each `fraction` of `total`, or `seconds` after the last
    line, whichever comes first, and always at the end (once)."""

    def __init__(self, total: int, now: float, fraction: float = 0.1, seconds: float = 30.0):
        self.total, self.seconds = total, seconds
        self.every = max(1, math.ceil(total * fraction))
        self.next_mark, self.last_time, self.last_done = self.every, now, None

    def due(self, done: int, now: float) -> bool:
        if done == self.last_done:
            return False
        if done >= self.total or done >= self.next_mark or now - self.last_time >= self.seconds:
            self.next_mark = (done // self.every + 1) * self.every
            self.last_time, self.last_done = now, done
            return True
        return False


def _plain(console: Console, line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)  # one line, never wrapped


def _live(console: Console) -> bool:
    return console.is_terminal and not console.is_dumb_terminal


class ProgressDisplay:
    """What every display shares: a rich bar on a terminal; elsewhere plain lines, every `line_fraction`
    of the work or `line_seconds`, whichever comes first."""

    def __init__(self, console: Console, columns: tuple, clock: Clock, line_fraction: float, line_seconds: float):
        self.console, self.clock = console, clock
        self.line_fraction, self.line_seconds = line_fraction, line_seconds
        self.live = _live(console)
        self.progress = Progress(*columns, console=console, transient=False)

    def __enter__(self):
        if self.live:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.__exit__(*exc)


class TrainingProgress(ProgressDisplay):
    """`tuneforge train` / `quickstart`: step, loss, learning rate, trained tokens/s and ETA."""

    def __init__(self, console: Console, *, clock: Clock = time.monotonic, line_fraction: float = 0.1,
                 line_seconds: float = 30.0):
        super().__init__(console, (TextColumn("[bold]train"), BarColumn(bar_width=16), MofNCompleteColumn(),
                                   TextColumn("{task.fields[stats]}"), TextColumn("eta {task.fields[eta]}")),
                         clock, line_fraction, line_seconds)
        self.task: TaskID | None = None
        self.rate = RecentRate()
        self.throttle: LineThrottle | None = None
        self.tokens = 0.0
        self.pair_rate = RecentRate()  # preference steps: pairs per second beside the tokens
        self.pairs = 0.0
        self.last_step: int | None = None

    def start(self, n_train: int, params: str) -> None:
        self.console.print(f"{n_train} training items · {params}")

    def figures(self, r: dict, now: float) -> tuple[float, float | None]:
        """Trained tokens/s and seconds left, from the recent records. The first record has only its
        own step to go by (the loop's timing of it)."""
        step = r["step"]
        if self.last_step is not None:  # records may skip steps (train.log_every): each stands for its span
            self.tokens += r["trained_tokens"] * (step - self.last_step)
            self.pairs += r.get("pairs", 0) * (step - self.last_step)
        self.last_step = step
        self.pair_rate.add(now, step, self.pairs)
        self.rate.add(now, step, self.tokens)
        left = r["total_steps"] - step
        rate = self.rate.per_second()
        if rate is not None:
            return rate[1], self.rate.eta(r["total_steps"])
        per_s = r["tokens_per_s"]
        if not left:
            return per_s, 0.0
        return per_s, left * r["trained_tokens"] / per_s if per_s > 0 else None

    def pairs_per_second(self, r: dict) -> float:
        """Preference pairs/s from the recent records (after `figures` saw `r`); the first record's
        own timing before that."""
        rate = self.pair_rate.per_second()
        if rate is not None:
            return rate[1]
        return r["pairs"] * r["tokens_per_s"] / r["trained_tokens"] if r["trained_tokens"] else 0.0

    def update(self, r: dict) -> None:
        now = self.clock()
        tok_s, eta = self.figures(r, now)
        # A GRPO step counts its completions, not tokens: its rate is completions/s, and its reward shows.
        unit = "completions/s" if "completions_per_s" in r else "tok/s"
        stats = f"loss {r['loss']:.4f} · lr {r['lr']:.2e} · {speed(tok_s)} {unit}"
        if "reward" in r:
            stats += f" · reward {r['reward']:.3f}"
        if "pairs" in r:  # a preference step: its pairs too
            stats += f" · {speed(self.pairs_per_second(r))} pairs/s"
        stats += "".join(f" · {k[5:]} {v:.4f}" for k, v in r.items() if k.startswith("eval_"))
        if "reward_accuracy" in r:
            stats += f" · acc {r['reward_accuracy']:.2f}"
        if "reward_margin" in r:  # absent from a KTO step whose examples are all of one class
            stats += f" · margin {r['reward_margin']:.3f}"
        step, total = r["step"], r["total_steps"]
        if self.live:
            if self.task is None:
                self.task = self.progress.add_task("train", total=total, stats="", eta="-")
            self.progress.update(self.task, completed=step, stats=stats, eta=duration(eta))
            return
        if self.throttle is None:
            self.throttle = LineThrottle(total, now, self.line_fraction, self.line_seconds)
        if self.throttle.due(step, now):
            _plain(self.console, f"step {step}/{total} ({100 * step // max(total, 1)}%) · {stats} · "
                                 f"eta {duration(eta)}")


class TaskProgress(ProgressDisplay):
    """Bars (or plain lines) for library work reported as `on_progress(what, done, total)`: one row
    per `what` (a method's answers, reference loss, embedding ...), with counts, rate and ETA."""

    def __init__(self, console: Console, *, clock: Clock = time.monotonic, line_fraction: float = 0.1,
                 line_seconds: float = 30.0):
        super().__init__(console, (TextColumn("[bold]{task.description}"), BarColumn(bar_width=24),
                                   MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                   TextColumn("eta {task.fields[eta]}")),
                         clock, line_fraction, line_seconds)
        self.tasks: dict[str, tuple[TaskID | None, RecentRate, LineThrottle]] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        now = self.clock()
        if what not in self.tasks:
            task = self.progress.add_task(what, total=total, rate="", eta="-") if self.live else None
            self.tasks[what] = (task, RecentRate(), LineThrottle(total, now, self.line_fraction, self.line_seconds))
        task, rate, throttle = self.tasks[what]
        rate.add(now, done)
        per_s = rate.per_second()
        rate_text = "-/s" if per_s is None else f"{speed(per_s[0])}/s"
        eta = duration(0.0 if done >= total else rate.eta(total))
        if self.live:
            self.progress.update(task, completed=done, total=total, rate=rate_text, eta=eta)
        elif throttle.due(done, now):
            _plain(self.console, f"{what} {done}/{total} ({100 * done // max(total, 1)}%) · {rate_text} · eta {eta}")

    def of(self, what: str) -> Callable[[int, int], None]:
        """A `(done, total)` callback for one named piece of work."""
        return lambda done, total: self(what, done, total)
