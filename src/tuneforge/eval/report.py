"""What an eval or a comparison leaves on disk: per-sample results (jsonl), summary.json, a bar chart
(compare) and a self-contained report.html."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import yaml

SHOWN_SAMPLES = 50
"""Samples listed in an HTML report; every sample is in the results file."""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, indent=1)
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


_STYLE = ("<style>body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:1em 0}"
          "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top;white-space:pre-wrap}"
          "img{border:1px solid #ddd;margin:.5em 0}.rec{background:#eef6ee;padding:1em;border-left:4px solid #4a4}"
          "</style>")


def _page(title: str, parts: list[str]) -> str:
    return f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>{_STYLE}" + "".join(parts)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _samples_table(rows: list[dict[str, Any]], metric_names: list[str]) -> str:
    shown = [[r["id"], r["prompt"][-1]["content"], r["answer"], r["reference"],
              *[r["metrics"].get(m) for m in metric_names]] for r in rows[:SHOWN_SAMPLES]]
    return _table(["id", "question", "answer", "reference", *metric_names], shown)


def write_eval_outputs(out: Path, cfg, run) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "results.jsonl", run.rows)
    summary = {**run.summary(), "prompting": cfg.eval.prompting, "model": cfg.model.name_or_path,
               "adapter": cfg.eval.adapter}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False,
                                                    allow_unicode=True), encoding="utf-8")
    names = list(run.scores)
    figures = [[k, v] for k, v in [*run.scores.items(), *run.extra.items()]]
    parts = [f"<h1>Evaluation: {html.escape(cfg.model.name_or_path)}"
             f"{' + ' + html.escape(cfg.eval.adapter) if cfg.eval.adapter else ''} ({html.escape(run.name)})</h1>",
             _table(["figure", "value"], figures + [["seconds / query", run.seconds_per_query],
                                                   ["prompt tokens / query", run.prompt_tokens_per_query]]),
             "".join(f"<p>{html.escape(n)}</p>" for n in run.notes),
             f"<h2>Samples (first {min(SHOWN_SAMPLES, len(run.rows))} of {len(run.rows)})</h2>",
             _samples_table(run.rows, names)]
    path = out / "report.html"
    path.write_text(_page("tuneforge eval", parts), encoding="utf-8")
    return path


def bar_chart(runs, metric: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in runs]
    panels = [(metric, [r.scores.get(metric) or 0.0 for r in runs]),
              ("seconds / query", [r.seconds_per_query for r in runs]),
              ("prompt tokens / query", [r.prompt_tokens_per_query for r in runs])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=100)
    for ax, (title, values) in zip(axes, panels):
        ax.bar(names, values, color="#5b8bd0")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=30)
        for i, v in enumerate(values):
            ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def write_compare_outputs(out: Path, runs, recommendation, primary: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for run in runs:
        write_jsonl(out / f"results_{run.name}.jsonl", run.rows)
    summary = {"primary_metric": primary, "strategies": [r.summary() for r in runs],
               "recommendation": recommendation.to_dict()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    bar_chart(runs, primary, out / "compare.png")
    metrics = list(runs[0].scores)
    rows = [[r.name, *[r.scores.get(m) for m in metrics], r.seconds_per_query, r.prompt_tokens_per_query,
             r.extra.get("training_seconds"), r.extra.get("trained_tokens"), "; ".join(r.notes)] for r in runs]
    reasons = "".join(f"<li>{html.escape(x)}</li>" for x in recommendation.reasons)
    parts = ["<h1>Zero-shot vs few-shot vs RAG vs fine-tuned</h1>",
             f'<div class="rec"><b>Recommendation: {html.escape(recommendation.strategy)}</b><ul>{reasons}</ul></div>',
             '<img src="compare.png" alt="compare chart">',
             _table(["strategy", *metrics, "seconds / query", "prompt tokens / query", "training seconds",
                     "trained tokens", "notes"], rows)]
    for run in runs:
        parts += [f"<h2>{html.escape(run.name)}: samples</h2>", _samples_table(run.rows, metrics)]
    path = out / "report.html"
    path.write_text(_page("tuneforge compare", parts), encoding="utf-8")
    return path
