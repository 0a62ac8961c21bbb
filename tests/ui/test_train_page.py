"""Train, Runs and Compare pages in the browser: a 3-step LoRA run on a tiny model launched from an edited
config, its chart gaining points live, stopped (a checkpoint kept), listed again by a restarted
workbench, resumed to the end; then the Runs page with the run's curves, report and manifest."""

from __future__ import annotations

import json
import time

import pytest
from tests.ui.conftest import ARTIFACTS, running_ui

CONFIG = """model:
  name_or_path: {model}
data: ../data/train.jsonl
method:
  name: lora
  r: 4
train:
  output_dir: ../runs/lora
  max_steps: 3
  batch_size: 64
  packing: false
  learning_rate: 1.0e-3
"""
COMPARE = """model:
  name_or_path: {model}
data: ../data/train.jsonl
eval:
  datasets:
    - path: ../data/eval.jsonl
  metrics: [exact_match]
  perplexity: false
  generation:
    max_new_tokens: 4
  compare:
    strategies: [zero_shot]
  output_dir: ../evals/cmp
"""
WORDS = "the quick brown fox jumps over a lazy dog while tuneforge trains small models".split()


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("root")
    (root / "data").mkdir()
    # Long enough replies and a large batch that each step takes seconds even on an idle 2-core CPU
    # (about 1 s per 6k tokens there): time to see a point arrive and stop before the run ends.
    with (root / "data" / "train.jsonl").open("w") as f:
        for i in range(128):
            text = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(200))
            f.write(json.dumps({"messages": [{"role": "user", "content": f"Repeat {i}: {text}"},
                                             {"role": "assistant", "content": text}]}) + "\n")
    (root / "data" / "eval.jsonl").write_text("".join((root / "data" / "train.jsonl").read_text().splitlines(True)[:2]))
    (root / "configs").mkdir()
    (root / "configs" / "lora.yaml").write_text(CONFIG.format(model=tiny_model_dir))
    (root / "configs" / "compare.yaml").write_text(COMPARE.format(model=tiny_model_dir))
    with running_ui(root, str(tiny_model_dir)) as ui:
        yield ui


def _points(page) -> int:
    return int(page.page.get_attribute("#chart-loss", "data-points") or 0)


def test_train_stop_resume(page, ui):
    from tuneforge.ui.jobs import Jobs

    page.open("train")
    page.page.select_option("#config", "configs/lora.yaml")
    page.page.locator("#validation.ok").wait_for()
    # Inline validation: the CLI's message, naming the key and the closest valid one.
    text = page.page.input_value("#config-text")
    page.page.fill("#config-text", text.replace("  r: 4", "  rr: 4"))
    page.page.locator("#validation.error", has_text="unknown key 'method.rr'").wait_for()
    assert "did you mean 'r'" in page.page.inner_text("#validation")
    assert page.page.is_disabled("#launch")
    page.snap("train-invalid")
    page.page.fill("#config-text", text)
    page.page.locator("#validation.ok").wait_for()
    page.page.click("#launch")

    page.wait("#job-status.running")
    page.wait("#chart-loss[data-points]:not([data-points='0'])", timeout=60_000)  # the first step's point, live
    page.page.click("#stop")
    page.page.locator("#job-status.stopped").wait_for(timeout=60_000)
    stopped_at = _points(page)
    assert 1 <= stopped_at < 3
    run = ui.root / "runs" / "lora"
    assert list((run / "checkpoints").iterdir()), "stopping keeps a checkpoint"
    page.snap("train-stopped")

    # Another workbench on the same root (a restart) lists the job again from SQLite.
    again = Jobs(ui.root / ".tuneforge" / "workbench.sqlite", cwd=ui.root)
    assert [(j.name, j.status, j.run_dir) for j in again.all()] == [("lora", "stopped", str(run))]
    again.close()

    page.page.click("#resume")
    page.page.locator("#job-status.running").wait_for()
    page.page.locator("#log", has_text="resumed from").wait_for(timeout=60_000)
    _time_pages(page, ui)
    page.page.locator("#job-status.finished").wait_for(timeout=90_000)
    page.wait("#chart-loss[data-points='3']")
    page.snap("train-finished")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert (run / "final" / "adapter_config.json").exists()


def _time_pages(page, ui):
    """Pages stay responsive while the run trains in its own process: each page's load time, in a second
    tab, is recorded under the artefacts (not asserted: timings are for benchmarks)."""
    other = page.context.new_page()
    other.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    loads = []
    for name in ("runs", "data", "train", "compare", "review", "playground"):
        t0 = time.perf_counter()
        other.goto(f"{ui.url}/#{name}")
        other.wait_for_selector(f"#page[data-page='{name}'][data-ready='1']")
        loads.append(f"{name} {time.perf_counter() - t0:.2f}s")
    assert ui.bench.jobs.all()[0].status == "running", "the pages were timed while the job trained"
    other.close()
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "timings.txt").open("a") as f:
        f.write("page loads while training: " + ", ".join(loads) + "\n")


def test_runs_and_compare_pages(page, ui):
    """The finished run's curves, report and manifest; then a comparison launched and its report shown."""
    page.open("runs/runs%2Flora")
    assert page.page.locator("tbody tr", has_text="runs/lora").count() == 1
    page.wait("#runs-chart[data-points='3']")
    plot = page.page.frame_locator("iframe.report").locator("img").first
    plot.wait_for()
    assert plot.evaluate("img => img.complete && img.naturalWidth") > 0, "the report's plots load"
    assert '"method": "lora"' in page.page.inner_text("#run-details pre")
    page.snap("runs")
    page.open("compare")
    page.page.select_option("#compare-config", "configs/compare.yaml")
    page.page.locator("text=valid · results in").wait_for()
    page.snap("compare")
    page.page.click("text=Run compare")
    report = page.page.frame_locator("iframe.report")
    report.locator("text=Recommendation: zero_shot").wait_for(timeout=90_000)
    assert "exact_match" in report.locator("table").first.inner_text()
    assert json.loads((ui.root / "evals" / "cmp" / "summary.json").read_text())
    page.snap("compare-report")
