"""Checkpoints that survive SIGKILL and are checked before use.

A checkpoint holds what exact resumption needs: the trainable weights (safetensors), the optimizer
and scheduler states, the torch RNG state, the data position (optimizer step) with the run's running
totals, and the fingerprint of the config that shaped it (see `fingerprint.py`). It is written to a
temporary directory, then renamed into place; `checksums.json` (size and SHA-256 of every other file)
is written last, so that a checkpoint damaged later (a full disk, a bad copy) is found and skipped
instead of crashing the resume or, worse, resuming from garbage."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tuneforge.errors import TuneforgeError
from tuneforge.paths import file_sha256

PREFIX = "step-"
CORRUPT = "corrupt-"
CHECKSUMS = "checksums.json"
FINGERPRINT = "fingerprint.json"

log = logging.getLogger("tuneforge.train")


@dataclass
class TrainState:
    step: int = 0
    best_eval: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    # Running totals over every segment of a resumed run, so the manifest's cost covers all of them.
    seconds: float = 0.0
    trained_tokens: int = 0
    last_loss: float | None = None
    """The loss of step `step`: a run resumed at its last step still reports it."""


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(run_dir: Path, model: nn.Module, optimizer, scheduler, state: TrainState,
                    keep_last: int, fingerprint: dict | None = None) -> Path:
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"{PREFIX}{state.step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=".tmp-"))
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(asdict(state)))
    if fingerprint is not None:
        (tmp / FINGERPRINT).write_text(json.dumps(fingerprint, indent=1, ensure_ascii=False))
    sums = {p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)} for p in sorted(tmp.iterdir())}
    (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=1))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    return sorted(p for p in root.glob(f"{PREFIX}*") if (p / "state.json").exists()) if root.exists() else []


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Delete the half-written `.tmp-*` checkpoints a killed run leaves behind."""
    root = run_dir / "checkpoints"
    leftovers = sorted(root.glob(".tmp-*")) if root.exists() else []
    for tmp in leftovers:
        shutil.rmtree(tmp, ignore_errors=True)
    return leftovers


def verify_checkpoint(path: Path) -> str | None:
    """What is wrong with the checkpoint at `path`, or None when it can be used.

    Sizes and hashes are checked against `checksums.json`; a checkpoint from before checksums were
    written is checked by loading its files instead."""
    try:
        sums_path = path / CHECKSUMS
        if sums_path.exists():  # intact as written: the hashes settle it
            for name, want in json.loads(sums_path.read_text()).items():
                f = path / name
                if not f.is_file():
                    return f"{name} is missing"
                if f.stat().st_size != want["size"]:
                    return f"{name} has {f.stat().st_size} bytes, {want['size']} were written"
                if file_sha256(f) != want["sha256"]:
                    return f"{name} does not match its SHA-256"
        else:
            torch.load(path / "optimizer.pt", weights_only=True)
            load_file(str(path / "trainable.safetensors"))
        read_state(path)
    except Exception as e:  # whatever stops a file from loading means the checkpoint is damaged
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}"
    return None


def _move_aside(path: Path) -> Path:
    target = path.with_name(CORRUPT + path.name)
    n = 1
    while target.exists():
        target, n = path.with_name(f"{CORRUPT}{path.name}.{n}"), n + 1
    path.rename(target)
    return target


def pick_checkpoint(resume: str, run_dir: Path | None, *, move_aside: bool = True) -> Path | None:
    """The checkpoint `train.resume` names, verified. `auto`: the newest valid one in `run_dir`; a
    damaged newer one is named in a warning and (with `move_aside`) renamed `corrupt-step-…`, so that
    the next checkpoint of that step can take its place. A named checkpoint must itself be valid."""
    if resume == "never":
        return None
    if resume != "auto":
        path = Path(resume)
        if not (path / "state.json").exists():
            raise TuneforgeError(f"train.resume: {path} is not a checkpoint directory (no state.json)")
        problem = verify_checkpoint(path)
        if problem:
            raise TuneforgeError(f"train.resume: checkpoint {path} is damaged ({problem}); name another "
                                 f"checkpoint or use --resume auto")
        return path
    if run_dir is None:
        return None
    found = list_checkpoints(run_dir)
    for path in reversed(found):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        where = _move_aside(path) if move_aside else path
        log.warning("checkpoint %s is damaged (%s); moved to %s, trying the one before", path, problem, where.name)
    if found:
        raise TuneforgeError(f"no valid checkpoint in {run_dir / 'checkpoints'}: all {len(found)} are damaged "
                             f"(moved aside as {CORRUPT}step-…); start again with --resume never")
    return None


def read_state(path: Path) -> TrainState:
    state = json.loads((path / "state.json").read_text())
    return TrainState(**{k: v for k, v in state.items() if k in {f.name for f in fields(TrainState)}})


def read_fingerprint(path: Path) -> dict | None:
    """The config fingerprint stored with a checkpoint; None for checkpoints written before them."""
    f = path / FINGERPRINT
    return json.loads(f.read_text()) if f.exists() else None


def load_checkpoint(path: Path, model: nn.Module, optimizer, scheduler) -> TrainState:
    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    if missing or set(weights) - set(params):
        raise ValueError(f"{path}: checkpoint does not match the model (e.g. {(missing or list(weights))[:3]})")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    extra = torch.load(path / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["torch_rng"])
    return read_state(path)
