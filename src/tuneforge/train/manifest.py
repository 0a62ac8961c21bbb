"""The run manifest: enough to reproduce or audit a run."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from tuneforge.paths import file_sha256

PACKAGES = ("tuneforge", "torch", "transformers", "peft", "accelerate", "tokenizers")


def data_hashes(datasets) -> dict[str, str]:
    """SHA-256 of every file the dataset configs read, found as the readers find them: for a
    `dataset_info.json#name` entry or a dataset YAML, the data files its entries name, not the
    registry."""
    from tuneforge.io.read import data_files  # the readers' own resolution: both name the same files

    out = {}
    for d in datasets:
        for p, _ in data_files(d):
            if p.is_file():
                out[str(p)] = file_sha256(p)
    return out


def _git_sha() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def hardware() -> dict[str, Any]:
    hw = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        hw["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return hw


def write_manifest(run_dir: Path, cfg, summary, *, tokenizer, read_report, tok_stats, n_train: int,
                   n_val: int) -> dict[str, Any]:
    state = summary.result.state
    # The state's totals cover every segment of a resumed run (the steps that made these weights);
    # work lost to a kill after the last checkpoint was replayed and counts once.
    seconds, trained_tokens = state.seconds or summary.seconds, state.trained_tokens
    resumes = run_dir / "resumes.jsonl"
    manifest = {
        "stage": cfg.train.stage, "method": cfg.method.name, "model": cfg.model.name_or_path,
        "template": cfg.template.jinja and "custom jinja" or cfg.template.name,
        # Why the template is not the one the config named (`auto` whose tokenizer template cannot
        # carry the data's tools: the family's built-in), else None.
        "template_note": tok_stats.template_note,
        "tokenizer": {"name": tokenizer.name_or_path, "vocab_size": len(tokenizer),
                      "eos": tokenizer.eos_token, "pad": tokenizer.pad_token},
        "seed": cfg.train.seed, "data": data_hashes(cfg.data.datasets),
        # tokenised = kept_whole + prompt_truncated + reply_truncated (a document cut at its end counts as
        # prompt_truncated)
        "samples": {"read": read_report.kept, "read_rejected": read_report.n_rejected,
                    "tokenised": tok_stats.kept, "dropped": tok_stats.dropped, "truncated": tok_stats.truncated,
                    "kept_whole": tok_stats.kept - tok_stats.truncated,
                    "prompt_truncated": tok_stats.truncated - tok_stats.reply_truncated,
                    "reply_truncated": tok_stats.reply_truncated, "cutoff_policy": cfg.template.cutoff_policy,
                    "train": n_train, "val": n_val},
        "parameters": {"trainable": summary.trainable, "total": summary.total},
        "result": {"steps": state.step, "final_loss": summary.final_loss,
                   "best_eval": state.best_eval, "best_step": state.best_step,
                   "stopped_early": summary.result.stopped_early, "interrupted": summary.result.interrupted},
        "cost": {"seconds": round(seconds, 2), "trained_tokens": trained_tokens,
                 "trained_tokens_per_s": trained_tokens / max(seconds, 1e-9)},
        "resumes": [json.loads(line) for line in resumes.read_text().splitlines()] if resumes.exists() else [],
        "versions": {p: _version(p) for p in PACKAGES}, "git_sha": _git_sha(), "hardware": hardware(),
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
