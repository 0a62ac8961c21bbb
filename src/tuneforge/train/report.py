"""report.html: the curves of a run (loss, eval loss, learning rate, gradient norm; an alignment stage's
rewards, margin, accuracy, KL and completion length) as PNGs, GRPO's sample completions, and
TensorBoard event files, all from metrics.jsonl."""

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


def _samples(records: list[dict], most: int = 8) -> str:
    """GRPO's sample completions of its first and last logged steps, with their rewards, as an HTML table."""
    logged = [r for r in records if r.get("samples")]
    picked = logged[:1] + logged[-1:] if len(logged) > 1 else logged
    rows = "".join(f"<tr><td>{r['step']}</td><td>{html.escape(str(s.get('prompt', '')))}</td>"
                   f"<td><pre>{html.escape(str(s.get('completion', '')))}</pre></td><td>{s.get('reward', '')}</td></tr>"
                   for r in picked for s in r["samples"][:most])
    return (f"<h2>Sample completions</h2><table><tr><th>step</th><th>prompt</th><th>completion</th><th>reward</th>"
            f"</tr>{rows}</table>") if rows else ""


def write_report(run_dir: Path) -> Path:
    records = read_metrics(run_dir)
    write_tensorboard(run_dir, records)
    keys = {k for r in records for k in r}
    eval_keys = sorted(k for k in keys if k.startswith("eval_"))
    # An alignment stage's own curves: each reward (a preference pair's sides, KTO's classes, GRPO's
    # functions) and their margin; their accuracy; GRPO's KL, clipping and reply length.
    reward_keys = sorted(k for k in keys if k.startswith("reward") and not k.endswith(("_accuracy", "_std"))
                         and "failures" not in k)
    charts = [("loss.png", ["loss", *eval_keys], "loss"), ("lr.png", ["lr"], "learning rate"),
              ("grad_norm.png", ["grad_norm"], "gradient norm"),
              ("tokens_per_s.png", ["tokens_per_s"], "trained tokens / s"),
              ("rewards.png", reward_keys, "rewards"), ("reward_accuracy.png", ["reward_accuracy"], "reward accuracy"),
              ("kl.png", ["kl", "clip_fraction"], "KL to the reference, clipped share"),
              ("completion_length.png", ["completion_length"], "completion length (tokens)")]
    images = [name for name, keys, title in charts if _plot(records, keys, title, run_dir / name)]
    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").exists() else {}
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v, ensure_ascii=False))}</td></tr>"
                   for k, v in manifest.items() if k not in ("versions", "hardware", "data"))
    body = "".join(f'<img src="{name}" alt="{name}">' for name in images)
    page = (f"<!doctype html><meta charset=utf-8><title>tuneforge run {html.escape(run_dir.name)}</title>"
            f"<style>body{{font-family:sans-serif;margin:2em}}th{{text-align:left;padding-right:1em}}"
            f"img{{margin:.5em;border:1px solid #ddd}}</style><h1>Run {html.escape(str(run_dir))}</h1>"
            f"<table>{rows}</table><div>{body}</div>{_samples(records)}")
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out
