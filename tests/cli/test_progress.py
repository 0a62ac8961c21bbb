"""Progress output: rates and ETAs from recent steps, plain lines where no terminal is attached,
bars and tables that stay readable in 80 columns."""

import io
import re

from rich.console import Console

from tuneforge.cli.progress import RecentRate, TaskProgress, TrainingProgress, duration


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80, force_terminal=False), out


def record(step: int, total: int, tokens: int = 400, tokens_per_s: float = 800.0, **extra) -> dict:
    return {"step": step, "total_steps": total, "loss": 2.0 / step, "lr": 1e-4, "trained_tokens": tokens,
            "tokens_per_s": tokens_per_s, **extra}


def figures(line: str) -> tuple[float, str]:
    tok_s, eta = re.search(r"· (\d+) tok/s .*· eta (\S+)$", line).groups()
    return float(tok_s), eta


def test_rate_and_eta_follow_the_recent_steps_not_the_warm_up():
    clock = Clock()
    console, out = plain_console()
    progress = TrainingProgress(console, clock=clock, line_fraction=0.001)  # a line per step
    for step in range(1, 61):
        clock.now += 8.0 if step <= 5 else 0.5  # 5 warm-up steps of 8 s, then 0.5 s per step
        progress.update(record(step, 200))
    lines = out.getvalue().splitlines()
    assert len(lines) == 60 and lines[-1].startswith("step 60/200 (30%)")
    # step 1 has only its own timing; steps 2-5 pay the warm-up, 400 tokens / 8 s
    assert figures(lines[0]) == (800.0, "1m40s") and figures(lines[3]) == (50.0, "26m08s")
    # 20 fast steps later the warm-up has left the window: 400 tokens / 0.5 s, 140 steps × 0.5 s left
    assert figures(lines[-1]) == (800.0, "1m10s")
    mid = figures(lines[14])[0]  # step 15: the window still holds some warm-up
    assert 50.0 < mid < 800.0


def test_records_that_skip_steps_count_the_tokens_of_every_step():
    rate = RecentRate()
    rate.add(0.0, 0)
    assert rate.per_second() is None and rate.eta(10) is None  # one record: no rate yet
    clock = Clock()
    console, out = plain_console()
    progress = TrainingProgress(console, clock=clock, line_fraction=0.001)
    for step in (10, 20, 30):  # train.log_every=10: one record per 10 steps of 100 tokens, 1 s each
        clock.now += 10.0
        progress.update(record(step, 100, tokens=100, tokens_per_s=100.0))
    assert figures(out.getvalue().splitlines()[-1]) == (100.0, "1m10s")


def test_plain_lines_every_tenth_or_every_30_seconds_and_always_the_last():
    clock = Clock()
    console, out = plain_console()
    progress = TrainingProgress(console, clock=clock)
    for step in range(1, 201):
        clock.now += 100.0 if step == 33 else 0.1  # one slow step: a line 30 s after the last one
        progress.update(record(step, 200, pairs=4, reward_accuracy=0.75, reward_margin=0.125,
                               eval_val_loss=1.5))
    steps = [int(re.match(r"step (\d+)/200", line).group(1)) for line in out.getvalue().splitlines()]
    assert steps == [20, 33, 40, 60, 80, 100, 120, 140, 160, 180, 200]
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("step 200/200 (100%) · loss 0.0100 · lr 1.00e-04 · ")
    assert "val_loss 1.5000" in last and "acc 0.75 · margin 0.125" in last and last.endswith("eta 0s")
    # a preference step: its tokens per second (400 a step of 0.1 s), and its pairs (4 a step)
    assert " · 4000 tok/s · 40 pairs/s · " in last


def test_a_preference_run_shows_tokens_and_pairs_per_second_from_its_first_step():
    console, out = plain_console()
    progress = TrainingProgress(console, clock=Clock(), line_fraction=0.001)
    progress.update(record(1, 10, tokens=300, tokens_per_s=600.0, pairs=4, reward_accuracy=0.5,
                           reward_margin=0.0))
    assert " · 600 tok/s · 8.0 pairs/s · " in out.getvalue()  # 300 tokens of 4 pairs in 0.5 s


def test_a_grpo_step_shows_completions_per_second_and_its_reward():
    console, out = plain_console()
    progress = TrainingProgress(console, clock=Clock(), line_fraction=0.001)
    progress.update(record(1, 10, tokens=32, tokens_per_s=2.0, completions_per_s=4.0, reward=0.625))
    assert " · 2.0 completions/s · reward 0.625 · " in out.getvalue() and "tok/s" not in out.getvalue()


def test_task_progress_lines_name_the_work_and_its_rate():
    clock = Clock()
    console, out = plain_console()
    with TaskProgress(console, clock=clock) as progress:
        progress("lora", 0, 50)
        for done in range(1, 51):
            clock.now += 0.25
            progress("lora", done, 50)
        progress.of("reference loss")(3, 3)
        progress.of("reference loss")(3, 3)  # repeated: said once
    lines = out.getvalue().splitlines()
    assert lines[0] == "lora 5/50 (10%) · 4.0/s · eta 11s"
    assert lines[-2] == "lora 50/50 (100%) · 4.0/s · eta 0s"
    assert lines[-1] == "reference loss 3/3 (100%) · -/s · eta 0s" and len(lines) == 11


def test_a_terminal_gets_one_live_bar_per_piece_of_work_within_80_columns():
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True)
    with TrainingProgress(console) as progress:
        progress.update(record(1, 4))
        progress.update(record(4, 4, eval_val_loss=0.25))
    final = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue()).split("\r")[-1]
    assert re.search(r"train .* 4/4 loss 0\.5000 · lr 1\.00e-04 · \d+ tok/s · val_loss 0\.2500 eta 0s", final)
    assert "step 4/4" not in out.getvalue()  # no plain lines on a terminal
    assert max(len(line) for line in final.splitlines()) <= 80


def test_duration_reads_like_a_clock():
    assert [duration(s) for s in (None, float("inf"), 4.4, 190, 3725)] == ["-", "-", "4s", "3m10s", "1h02m"]


def test_summary_tables_keep_every_figure_whole_in_80_columns():
    from tuneforge.cli.evaluate import summary_table
    from tuneforge.eval.runner import StrategyRun

    def run(name, score):
        return StrategyRun(name, [], {"exact_match": score, "json_schema": 0.5, "rouge_l": 0.4321},
                         0.1234, 812.0, extra={"perplexity": 52770.0, "reference_loss": 10.87,
                                              "reference_tokens": 1234, "training_seconds": 81.5})

    for runs in ([run("weather-lora", 0.25)], [run(n, 0.5) for n in ("zero_shot", "few_shot", "rag", "lora")]):
        out = io.StringIO()
        console = Console(file=out, width=80)
        console.print(summary_table(console, "3 samples", runs))
        text = out.getvalue()
        assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
        for figure in ("5.277e+04", "10.87", "1234", "0.4321", "0.12", "812", "reference_tokens",
                       *(r.name for r in runs)):
            assert figure in text
    wide = io.StringIO()
    console = Console(file=wide, width=200)
    console.print(summary_table(console, "3 samples", [run("zero_shot", 0.5), run("lora", 0.75)]))
    assert re.search(r"│ lora +│ +0\.75 │", wide.getvalue())  # wide enough: a row per method


def test_runs_table_folds_names_and_keeps_figures_whole_in_80_columns(tmp_path):
    import json

    from typer.testing import CliRunner

    from tuneforge.cli import app

    runs = [("quickstart", "smollm2-135m-instruct", 1474560, 81.5),
            ("weather/lora-r16-lr2e-4", "/models/Llama-3.2-1B-Instruct", 11272192, 4234)]
    for name, model, trainable, seconds in runs:
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "manifest.json").write_text(json.dumps({
            "stage": "sft", "method": "lora", "model": model, "parameters": {"trainable": trainable},
            "result": {"steps": 1200, "final_loss": 0.8123, "best_eval": 0.9101}, "cost": {"seconds": seconds}}))
    result = CliRunner().invoke(app, ["runs", str(tmp_path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and "…" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    rows = [line for line in result.output.splitlines() if "1200" in line]
    assert all("0.8123" in row and "0.9101" in row for row in rows) and len(rows) == 2
    assert "1.47M" in rows[0] and "1m22s" in rows[0] and "11.3M" in rows[1] and "1h10m" in rows[1]
