"""report.html: the curves of a run (loss, eval loss, learning rate, gradient norm) as PNGs, and
TensorBoard event files, both from metrics.jsonl."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _plot(records: list[dict], keys: list[str], title: str, out: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    drawn = False
    for key in keys:
        points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), label=key, marker="." if len(points) < 30 else None)
            drawn = True
    ax.set_title(title)
    ax.set_xlabel("step")
    if drawn:
        ax.legend()
        fig.tight_layout()
        fig.savefig(out)
    plt.close(fig)
    return drawn


def write_tensorboard(run_dir: Path, records: list[dict]) -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: the curves are in report.html anyway
        return
    # Written afresh from metrics.jsonl each time: events appended beside an earlier report's (a resumed
    # run's) would show replayed steps twice. Built aside, then swapped in.
    out, tmp = run_dir / "tensorboard", run_dir / ".tensorboard.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with SummaryWriter(log_dir=str(tmp)) as writer:
        for r in records:
            for key, value in r.items():
                if key != "step" and isinstance(value, (int, float)):
                    writer.add_scalar(key, value, r["step"])
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def write_report(run_dir: Path) -> Path:
    records = read_metrics(run_dir)
    write_tensorboard(run_dir, records)
    eval_keys = sorted({k for r in records for k in r if k.startswith("eval_")})
    charts = [("loss.png", ["loss", *eval_keys], "loss"), ("lr.png", ["lr"], "learning rate"),
              ("grad_norm.png", ["grad_norm"], "gradient norm"),
              ("tokens_per_s.png", ["tokens_per_s"], "trained tokens / s")]
    images = [name for name, keys, title in charts if _plot(records, keys, title, run_dir / name)]
    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").exists() else {}
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v, ensure_ascii=False))}</td></tr>"
                   for k, v in manifest.items() if k not in ("versions", "hardware", "data"))
    body = "".join(f'<img src="{name}" alt="{name}">' for name in images)
    page = (f"<!doctype html><meta charset=utf-8><title>tuneforge run {html.escape(run_dir.name)}</title>"
            f"<style>body{{font-family:sans-serif;margin:2em}}th{{text-align:left;padding-right:1em}}"
            f"img{{margin:.5em;border:1px solid #ddd}}</style><h1>Run {html.escape(str(run_dir))}</h1>"
            f"<table>{rows}</table><div>{body}</div>")
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out
