"""`tuneforge train`: a config in, a run directory out.

The run directory holds the resolved config, a manifest (data hashes, template, tokenizer, versions,
git sha, hardware, seed, parameter counts, cost), metrics.jsonl, checkpoints, the final artefact
(`final/`, plus `best/` with keep-best) and a report. A resumed run keeps it true: config.yaml is the
config in use, resumes.jsonl lists each resume with the config changes it was allowed, metrics.jsonl
holds each step once and the manifest's cost covers every segment.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from tuneforge.config import Config, DataConfig
from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.formatting import TokenizeStats, tool_templates
from tuneforge.formatting.encode import cutoff_drop_warning
from tuneforge.io import ReadReport, iter_samples, read_samples
from tuneforge.native import heap, mkl_dispatch, speed_up
from tuneforge.train import mixing
from tuneforge.train.checkpoint import pick_checkpoint, read_fingerprint, read_state, remove_leftovers
from tuneforge.train.fingerprint import check_resume, config_changes, fingerprint
from tuneforge.train.loop import LoopResult, train_loop
from tuneforge.train.manifest import write_manifest
from tuneforge.train.stages import STAGES, StageInputs
from tuneforge.types import Sample

log = logging.getLogger("tuneforge.train")


@dataclass
class RunSummary:
    run_dir: Path
    result: LoopResult
    trainable: int
    total: int
    seconds: float

    @property
    def final_dir(self) -> Path:
        return self.run_dir / "final"

    @property
    def final_loss(self) -> float | None:
        """The last step's loss, also when this segment resumed at the last step and trained none."""
        history = self.result.history
        return history[-1]["loss"] if history else self.result.state.last_loss


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def is_main_process() -> bool:
    """Rank 0, or not distributed. Asked before the loop's Accelerator joins the process group, so the
    launcher's RANK stands in for the group's rank until then."""
    if torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def read_training_samples(cfg: Config) -> tuple[list[Sample], ReadReport]:
    """Every dataset read into one report, then mixed (multi-task) and topped up with replay data."""
    d = cfg.data
    # Atomic: a read stopped by a bad record leaves no rejects file that looks complete.
    report = ReadReport(rejects_path=d.rejects_path, atomic=True)
    read = lambda ds: list(iter_samples(ds, placeholders=d.placeholders, on_error=d.on_error, report=report))  # noqa: E731
    try:
        samples = mixing.mix([read(ds) for ds in d.datasets], d, cfg.train.seed)
        replay = [s for ds in d.replay for s in read(ds)]
    except BaseException:
        report.discard()
        raise
    report.finish()
    return mixing.add_replay(samples, replay, d.replay_share, cfg.train.seed), report


def tokenised_summary(stats: TokenizeStats) -> str:
    """`tokenised 10 samples: 4 kept (1 truncated), 6 dropped (too_long 6)`."""
    dropped = sum(stats.dropped.values())
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(stats.dropped.items()))
    replies = f", {stats.reply_truncated} of them in the reply" if stats.reply_truncated else ""
    return (f"tokenised {stats.samples} samples with template {stats.template}: {stats.kept} kept "
            f"({stats.truncated} truncated{replies}), {dropped} dropped" + (f" ({reasons})" if reasons else ""))


MAX_DROP_SHARE = 0.5


def check_drops(stats: TokenizeStats, cfg: Config) -> None:
    """Stop before training when the template cannot carry some samples (tool calls, tools, contents)
    or more than half the samples are dropped, unless `data.allow_dropping` says go on."""
    if cfg.data.allow_dropping or not stats.samples:
        return
    if drops := stats.template_drops:
        what = ", ".join(f"{n} samples by {r}" for r, n in sorted(drops.items()))
        example = next((f" First: {j.where}: {j.detail}." for j in stats.rejects if j.reason in drops), "")
        raise TuneforgeError(f"template '{stats.template}' cannot render everything the data holds: {what}.{example} "
                             f"Templates that render tools and tool calls: {', '.join(tool_templates())} "
                             f"(template.name). Set data.allow_dropping: true to train without those samples.")
    dropped = sum(stats.dropped.values())
    if dropped > MAX_DROP_SHARE * stats.samples:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(stats.dropped.items()))
        raise TuneforgeError(f"{dropped} of {stats.samples} samples ({dropped / stats.samples:.0%}) would be dropped "
                             f"while tokenising ({reasons}; cutoff_len {cfg.template.cutoff_len}): raise "
                             f"template.cutoff_len, run `tuneforge doctor` on this config, or set "
                             f"data.allow_dropping: true to train on the rest.")


def _block_size(cfg: Config) -> int:
    """Tokens per packed row or pre-training block: `train.block_size`, else the cutoff."""
    block, cutoff = cfg.train.block_size, cfg.template.cutoff_len
    if block is None:
        return cutoff
    if block < cutoff and cfg.train.stage != "pt" and cfg.train.packing:
        raise ConfigError(f"train.block_size={block} is below template.cutoff_len={cutoff}: a packed row must "
                          f"hold the longest sample. Raise train.block_size or lower the cutoff.")
    return block


def _keep_metrics_up_to(run_dir: Path, step: int) -> None:
    """Drop the records of steps after `step` (a resumed run replays them; a fresh run has none), so
    metrics.jsonl, the plots and TensorBoard hold each step once. Rewritten atomically: a kill now
    leaves the old file or the new one."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and _step_of(line) is not None and _step_of(line) <= step]
    tmp = path.with_name(".metrics.jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(tmp, path)


def _step_of(line: str) -> int | None:
    try:
        return json.loads(line).get("step")
    except json.JSONDecodeError:  # a line cut short by a kill
        return None


def _prepare_run_dir(cfg: Config, run_dir: Path, allow_changes: Iterable[str], main: bool) -> tuple[Path | None, dict]:
    """Before any heavy work: clear a killed run's leftovers, pick a valid checkpoint to resume from,
    refuse a resume whose config differs in ways the run cannot take, then record the config actually
    used (config.yaml; each resume with its changes in resumes.jsonl)."""
    if main:
        remove_leftovers(run_dir)
    fp = fingerprint(cfg)
    ckpt = pick_checkpoint(cfg.train.resume, run_dir, move_aside=main)
    if ckpt is not None:
        step = read_state(ckpt).step
        stored = read_fingerprint(ckpt)
        if stored is None:
            log.warning("%s was written before checkpoints recorded their config: resuming unchecked", ckpt)
        changes = config_changes(stored, fp) if stored is not None else {}
        check_resume(changes, allow_changes, checkpoint=str(ckpt), step=step)
        if main:
            entry = {"at_step": step, "checkpoint": str(ckpt), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                     "changes": {k: list(v) for k, v in changes.items()}}
            with (run_dir / "resumes.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    if main:
        _keep_metrics_up_to(run_dir, read_state(ckpt).step if ckpt else 0)
        if ckpt is None:
            (run_dir / "resumes.jsonl").unlink(missing_ok=True)  # a fresh start has no earlier segments
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False,
                                                             allow_unicode=True))
    return ckpt, fp


def run_training(cfg: Config, *, on_log: Callable[[dict], None] | None = None,
                 on_start: Callable[[int, str], None] | None = None,
                 allow_changes: Iterable[str] = ()) -> RunSummary:
    """Train as `cfg` says. `allow_changes`: config keys a resumed run may change (see
    `tuneforge.train.fingerprint`); any other difference from the checkpoint's config is refused."""
    from tuneforge.formatting import tokenize_samples
    from tuneforge.methods import get_method, parameter_report
    from tuneforge.models import load_model

    started = time.time()
    mkl_dispatch.enable()  # before any product: MKL settles its kernels at its first
    tc = cfg.train
    run_dir = Path(tc.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    main = is_main_process()  # under DDP every process trains; one writes the run directory
    resume_from, fp = _prepare_run_dir(cfg, run_dir, allow_changes, main)
    torch.manual_seed(tc.seed)

    model, tokenizer = load_model(cfg.model)
    if next(model.parameters()).device.type == "cpu":
        heap.keep_allocations_on_heap()  # each step's activations on reused pages, not fresh mappings
    samples, read_report = read_training_samples(cfg)
    if not samples:
        raise TuneforgeError("no training samples: check data.datasets")
    stage = STAGES[tc.stage]
    kinds = {s.kind for s in samples}
    if kinds != {stage.sample_kind}:
        raise TuneforgeError(f"train.stage={tc.stage} needs {stage.sample_kind} samples, the data holds "
                             f"{sorted(kinds)}")

    tcfg = cfg.template.model_copy(update={"cutoff_len": stage.template_cutoff(cfg)})
    ds, tok_stats = tokenize_samples(samples, tokenizer, tcfg)
    if main:
        for line in filter(None, [tok_stats.template_note, tokenised_summary(tok_stats)]):
            print(line, flush=True)
        if warning := cutoff_drop_warning(tok_stats.dropped.get("too_long", 0), tok_stats.samples,
                                          tcfg.cutoff_len, tcfg.cutoff_policy):
            print(f"warning: {warning}", flush=True)
    check_drops(tok_stats, cfg)
    if tok_stats.template_note and main:
        # Serving, evaluation and export read the template from config.yaml: the one that trained.
        cfg = cfg.model_copy(update={"template": cfg.template.model_copy(update={"name": tok_stats.template})})
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False,
                                                             allow_unicode=True))
    if len(ds) == 0:
        raise TuneforgeError(f"every sample was dropped while tokenising: {tok_stats.dropped}; "
                             f"run `tuneforge doctor` on this config")
    val_ds = val_samples = None
    if cfg.eval.datasets:  # a held-out file instead of a share of the training data
        val_samples, _ = read_samples(DataConfig(datasets=cfg.eval.datasets, placeholders=cfg.data.placeholders))
        val_ds, _ = tokenize_samples(val_samples, tokenizer, tcfg)

    method = get_method(cfg.method.name)
    ref_model = None
    if stage.needs_reference_copy and method.writes_whole_model:
        ref_model = copy.deepcopy(model).requires_grad_(False).eval()  # frozen reference copy
    model = method.apply(model, cfg.method)
    speed_up(model)  # CPU kernels for LoRA dropout and layers, SwiGLU, RMSNorm and RoPE, where they apply
    params = parameter_report(model)
    setup = stage.build(StageInputs(cfg, model, method, ds, samples, val_ds, val_samples, _block_size(cfg),
                                    _pad_id(tokenizer), ref_model))
    train_items, val_items = setup.train_items, setup.val_items

    if on_start:
        on_start(len(train_items), str(params))
    metrics = (run_dir / "metrics.jsonl").open("a", encoding="utf-8") if main else None

    def log(record: dict) -> None:
        if metrics:
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
        if on_log and main:
            on_log(record)

    def save_best() -> None:
        if main:
            method.save(model, run_dir / "best")

    try:
        result = train_loop(model, setup.loss_fn, setup.batches_of, tc.model_copy(update={"resume": "never"}),
                            run_dir=run_dir, eval_batches=setup.evals, on_log=log,
                            on_best=save_best if tc.eval_every else None, fingerprint=fp, resume_from=resume_from,
                            started=started)
    finally:
        if metrics:
            metrics.close()
    summary = RunSummary(run_dir, result, params.trainable, params.total, time.time() - started)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        if not main:
            torch.distributed.destroy_process_group()
            return summary
    method.save(model, run_dir / "final")
    tokenizer.save_pretrained(run_dir / "final")
    write_manifest(run_dir, cfg, summary, tokenizer=tokenizer, read_report=read_report, tok_stats=tok_stats,
                   n_train=len(train_items), n_val=len(val_items))
    from tuneforge.train.report import write_report

    write_report(run_dir)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return summary
