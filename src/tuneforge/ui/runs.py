"""The Runs page: run directories under a folder (as `tuneforge runs` lists them), their metrics for
overlaid curves, and their manifest and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneforge.train.report import read_metrics

CURVES = ("loss", "lr", "tokens_per_s", "grad_norm", "eval_loss")


def find_runs(root: Path) -> list[Path]:
    """Folders holding a manifest (finished) or a metrics file (still training), outermost only."""
    found = {p.parent for pattern in ("**/manifest.json", "**/metrics.jsonl") for p in root.glob(pattern)
             if not any(part.startswith(".") for part in p.relative_to(root).parts)}
    return sorted(d for d in found if not any(d.is_relative_to(other) and d != other for other in found))


def summary(run_dir: Path) -> dict[str, Any]:
    """The row `tuneforge runs` prints, from the manifest; a run without one yet is `training`."""
    manifest, final = run_dir / "manifest.json", (run_dir / "final").is_dir()
    if not manifest.exists():
        records = read_metrics(run_dir)
        return {"state": "training", "final": final, "steps": records[-1]["step"] if records else 0,
                "loss": records[-1]["loss"] if records else None}
    m = json.loads(manifest.read_text())
    r, p = m.get("result", {}), m.get("parameters", {})
    return {"state": "done", "final": final, "stage": m.get("stage"), "method": m.get("method"),
            "model": m.get("model"),
            "steps": r.get("steps"), "loss": r.get("final_loss"), "eval": r.get("best_eval"),
            "trainable": p.get("trainable"), "seconds": m.get("cost", {}).get("seconds")}


def curves(run_dir: Path, since: int = 0) -> dict[str, Any]:
    """Points of each curve after step `since` (a live chart asks only for what is new), with the
    run's step count for a progress bar and an ETA."""
    records = [r for r in read_metrics(run_dir) if r.get("step", 0) > since]
    points = {key: [[r["step"], r[key]] for r in records if isinstance(r.get(key), (int, float))]
              for key in CURVES}
    last = records[-1] if records else {}
    return {"points": points, "step": last.get("step", since), "total_steps": last.get("total_steps")}


def details(run_dir: Path) -> dict[str, Any]:
    manifest = run_dir / "manifest.json"
    return {"manifest": json.loads(manifest.read_text()) if manifest.exists() else None,
            "report": (run_dir / "report.html").exists(), "final": (run_dir / "final").is_dir()}
