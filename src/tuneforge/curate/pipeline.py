"""The runner: streams samples through the operators in shards, counts every removal by reason,
writes kept records, `rejects.jsonl` and `stats.json`, and checks that the counts add up (with the
records the readers rejected: in = kept + removed + rejected).

The operator list is cut into *stages*: a run of record operators is one map stage (each shard is
processed independently, in any worker), and each global operator (dedup) is a stage of its own
(keys per shard in the workers, one decision over all shards in the main process, then the
verdicts applied per shard in the workers). The main process does no per-record work beyond
shipping records of a streamed input: an in-memory input is read by the workers themselves. Every stage
writes one file per shard under `OUT/.work/` followed by a `.done` marker, so a killed run resumes
where it stopped, and outputs are concatenated in shard order: the result is the same for any number
of workers. The Ray executor (`ray_executor.py`) runs the same per-shard functions on Ray Data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

from tuneforge.curate.base import Drop, GlobalOp, OpConfig, RecordOp
from tuneforge.errors import ConfigError
from tuneforge.io.report import ReadReport
from tuneforge.types import Sample
from tuneforge.workers import worker_pool

OUTPUT = "data.jsonl"
REJECTS = "rejects.jsonl"
READ_REJECTS = "read_rejects.jsonl"
WORK = ".work"
"""Under the output folder: one folder per stage holding each shard's files (`shard_path`)."""
"""Input records the readers rejected (`inputs[].on_error: skip`), with source file and line."""
STATS = "stats.json"


@dataclass
class Stage:
    index: int
    ops: list[OpConfig]

    @property
    def is_global(self) -> bool:
        return len(self.ops) == 1 and self.ops[0].is_global

    @property
    def label(self) -> str:
        """Its name in `stage_seconds`: the first operator's label."""
        return self.ops[0].label if self.ops else "read"


def plan(ops: list[OpConfig]) -> list[Stage]:
    """Stage 0 is always a map stage (possibly with no operator): it also shards the input.
    Every operator is built once here: a missing optional package fails now, not in a worker an
    hour in."""
    labels = Counter(op.label for op in ops)
    if dup := [name for name, n in labels.items() if n > 1]:
        raise ConfigError(f"operators: {dup[0]!r} appears twice; give one of them a distinct `name:`")
    stages = [Stage(0, [])]
    for op in ops:
        if op.is_global:
            stages.append(Stage(len(stages), [op]))
        elif stages[-1].is_global:
            stages.append(Stage(len(stages), [op]))
        else:
            stages[-1].ops.append(op)
    for stage in stages:
        for op in stage.ops:
            op.build()
    return stages


# ---------------------------------------------------------------- shard files


def _write_atomic(path: Path, lines: Iterable[str]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(tmp, path)


def parse_lines(lines: Iterable[str]) -> list[Sample]:
    return [Sample.from_dict(json.loads(line)) for line in lines]


def _read_shard(path: Path) -> list[Sample]:
    with path.open(encoding="utf-8") as f:
        return parse_lines(f)


def _reject(sample: Sample, op: str, drop: Drop) -> str:
    return json.dumps({"operator": op, "reason": drop.reason, "detail": drop.detail, "where": sample.where,
                       "record": sample.to_dict()}, ensure_ascii=False) + "\n"


def _dump(sample: Sample) -> str:
    return json.dumps(sample.to_dict(), ensure_ascii=False) + "\n"


def stage_dir(work: Path, stage: int) -> Path:
    return work / f"{stage:02d}"


def shard_path(work: Path, stage: int, shard: int, suffix: str = ".jsonl") -> Path:
    """The one spelling of a shard's files: `OUT/.work/SS/NNNNNN.jsonl` (kept records), `.rejects.jsonl`,
    `.stats.json` and the `.done` marker."""
    return stage_dir(work, stage) / f"{shard:06d}{suffix}"


@dataclass
class _ShardFiles:
    work: Path
    stage: int
    shard: int

    def path(self, suffix: str) -> Path:
        return shard_path(self.work, self.stage, self.shard, suffix)

    @property
    def done(self) -> bool:
        return self.path(".done").exists()

    def finish(self, kept: list[str], rejects: list[str], counts: dict[str, Any], write_rejects: bool) -> None:
        _write_atomic(self.path(".jsonl"), kept)
        if write_rejects:
            _write_atomic(self.path(".rejects.jsonl"), rejects)
        _write_atomic(self.path(".stats.json"), [json.dumps(counts)])
        self.path(".done").touch()  # last: a shard without it is redone on resume


# ---------------------------------------------------------------- one shard's work, for any executor


class ShardResult(NamedTuple):
    kept: list[str]  # jsonl lines
    rejects: list[str]
    counts: dict[str, Any]


def map_records(ops: list[RecordOp], samples: list[Sample]) -> ShardResult:
    """A map stage's operators over one shard, in order; a record stops at the first drop."""
    counts = {op.name: {"in": 0, "modified": 0, "removed": Counter()} for op in ops}
    kept, rejects = [], []
    for sample in samples:
        for op in ops:
            c = counts[op.name]
            c["in"] += 1
            result = op(sample)
            if isinstance(result, Drop):
                c["removed"][result.reason] += 1
                rejects.append(_reject(sample, op.name, result))
                break
            if result is not sample:
                c["modified"] += 1
            sample = result
        else:
            kept.append(_dump(sample))
    return ShardResult(kept, rejects, {"in": len(samples), "ops": counts})


def apply_verdicts(op: GlobalOp, lines: list[str], dup_of: list[str | None]) -> ShardResult:
    """A global operator's verdict applied to one shard: `dup_of[i]` is where record i's original
    came from, None to keep it. Kept lines are copied verbatim; only removed records are parsed."""
    kept = [line for line, orig in zip(lines, dup_of) if orig is None]
    rejects = [_reject(Sample.from_dict(json.loads(line)), op.name, Drop(op.reason, f"duplicate of {orig}"))
               for line, orig in zip(lines, dup_of) if orig is not None]
    removed = {op.reason: len(rejects)} if rejects else {}
    return ShardResult(kept, rejects, {"in": len(lines), "ops": {op.name: {"in": len(lines), "modified": 0,
                                                                          "removed": removed}}})


# ---------------------------------------------------------------- work done in workers

_built: dict[tuple[str, int], list[Any]] = {}


def stage_ops(key: str, stage: Stage) -> list[Any]:
    """Operators are built once per process (models and phrase tables are not cheap)."""
    if (key, stage.index) not in _built:
        _built[(key, stage.index)] = [op.build() for op in stage.ops]
    return _built[(key, stage.index)]


_input: Sequence[Sample] = ()
"""An in-memory input, handed to each worker once when the pool starts (inherited, not pickled,
where processes fork): a worker then reads its own input shard by range, and the main process
neither copies nor ships records."""


def _init_worker(samples: Sequence[Sample]) -> None:
    global _input
    _input = samples


Chunk = list[Sample] | tuple[int, int] | None
"""A map stage's input for one shard: records shipped by the main process (a stream), a range of
the in-memory input, or None: the previous stage's shard file."""


def _map_shard(key: str, stage: Stage, work: Path, shard: int, chunk: Chunk, write_rejects: bool) -> None:
    if chunk is None:
        samples = _read_shard(shard_path(work, stage.index - 1, shard))
    else:
        samples = list(_input[chunk[0]:chunk[1]]) if isinstance(chunk, tuple) else chunk
    result = map_records(stage_ops(key, stage), samples)
    _ShardFiles(work, stage.index, shard).finish(*result, write_rejects)


def _shard_keys(key: str, stage: Stage, work: Path, shard: int) -> tuple[Any, list[str]]:
    op: GlobalOp = stage_ops(key, stage)[0]
    samples = _read_shard(shard_path(work, stage.index - 1, shard))
    return op.keys(samples), [s.where for s in samples]


def _filter_shard(key: str, stage: Stage, work: Path, shard: int, dup_of: list[str | None],
                  write_rejects: bool) -> None:
    with shard_path(work, stage.index - 1, shard).open(encoding="utf-8") as f:
        lines = f.readlines()
    result = apply_verdicts(stage_ops(key, stage)[0], lines, dup_of)
    _ShardFiles(work, stage.index, shard).finish(*result, write_rejects)


# ---------------------------------------------------------------- the run


@dataclass
class RunOptions:
    workers: int = 1
    shard_size: int = 5000
    write_rejects: bool = True
    resume: bool = False


@dataclass
class _Run:
    key: str
    stages: list[Stage]
    work: Path
    opts: RunOptions
    pool: Any = None
    shards: int = 0
    resumed: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.pool is None:
            fn(*args)
            return None
        return self.pool.apply_async(fn, args)

    def wait(self, pending: deque[Any], limit: int = 0) -> None:
        """Block until at most `limit` tasks are in flight (a worker's exception surfaces here)."""
        while len(pending) > limit:
            task = pending.popleft()
            if task is not None:
                task.get()

    def map_stage(self, stage: Stage, chunks: Iterator[Chunk] | None) -> None:
        stage_dir(self.work, stage.index).mkdir(exist_ok=True)
        pending: deque[Any] = deque()
        shard_inputs = enumerate(chunks) if chunks is not None else ((k, None) for k in range(self.shards))
        for shard, chunk in shard_inputs:
            if stage.index == 0:
                self.shards = shard + 1
            if _ShardFiles(self.work, stage.index, shard).done:
                self.resumed += 1
                continue
            pending.append(self.submit(_map_shard, self.key, stage, self.work, shard, chunk,
                                       self.opts.write_rejects))
            # bounded look-ahead keeps memory flat while the workers stay busy
            self.wait(pending, 2 * self.opts.workers)
        self.wait(pending)

    def global_stage(self, stage: Stage) -> None:
        """Keys per shard in the workers, one decision here (vectorised), verdicts applied per shard
        in the workers again."""
        d = stage_dir(self.work, stage.index)
        d.mkdir(exist_ok=True)
        if (d / "stage.done").exists():
            self.resumed += self.shards
            return
        args = [(self.key, stage, self.work, k) for k in range(self.shards)]
        results = (self.pool.starmap(_shard_keys, args) if self.pool is not None
                   else [_shard_keys(*a) for a in args])
        op: GlobalOp = stage_ops(self.key, stage)[0]
        wheres = [w for r in results for w in r[1]]
        # nothing left to compare (empty input, or earlier operators removed everything)
        dup_of = op.decide([r[0] for r in results]).tolist() if wheres else []
        pending: deque[Any] = deque()
        start = 0
        for shard, (_, shard_wheres) in enumerate(results):
            verdicts = [None if j < 0 else wheres[j] for j in dup_of[start:start + len(shard_wheres)]]
            start += len(shard_wheres)
            if not _ShardFiles(self.work, stage.index, shard).done:
                pending.append(self.submit(_filter_shard, self.key, stage, self.work, shard, verdicts,
                                           self.opts.write_rejects))
        self.wait(pending)
        (d / "stage.done").touch()


def chunked(it: Iterable[Sample], size: int) -> Iterator[list[Sample]]:
    it = iter(it)
    while chunk := list(islice(it, size)):
        yield chunk


def recipe_key(ops: list[OpConfig], shard_size: int) -> str:
    spec = json.dumps([op.model_dump(mode="json") for op in ops] + [shard_size], sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def run(samples: Iterable[Sample], ops: list[OpConfig], out_dir: Path | str,
        options: RunOptions | None = None, read: ReadReport | None = None) -> dict[str, Any]:
    """Curate `samples` with `ops` into `out_dir`; returns the stats (also in `stats.json`).
    `read`: the report of the readers streaming `samples`; its rejected records join the counts."""
    opts = options or RunOptions()
    out_dir = Path(out_dir)
    work = out_dir / WORK
    key = recipe_key(ops, opts.shard_size)
    if work.exists() and not opts.resume:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text())["recipe"] != key:
        raise ConfigError(f"{work} holds a run of a different recipe; run without resume to start over")
    manifest.write_text(json.dumps({"recipe": key, "shard_size": opts.shard_size}))

    stages = plan(ops)
    t0 = time.perf_counter()
    r = _Run(key, stages, work, opts)
    size = opts.shard_size
    if isinstance(samples, Sequence):
        chunks: Iterator[Chunk] = ((i, min(i + size, len(samples))) for i in range(0, len(samples), size))
    else:
        chunks, samples = chunked(samples, size), ()
    _init_worker(samples)
    try:
        with worker_pool(opts.workers, _init_worker, (samples,)) if opts.workers > 1 else nullcontext() as r.pool:
            for stage in stages:
                ts = time.perf_counter()
                if stage.is_global:
                    r.global_stage(stage)
                else:
                    r.map_stage(stage, chunks if stage.index == 0 else None)
                r.timings[stage.label] = round(time.perf_counter() - ts, 3)
    finally:
        _init_worker(())
    return write_stats(out_dir, _finish(r, out_dir), t0, read)


def write_stats(out_dir: Path, stats: dict[str, Any], t0: float, read: ReadReport | None = None) -> dict[str, Any]:
    """Add the readers' rejects and the timings, move the read rejects file into place, write `stats.json`."""
    rejected = dict(read.rejected.most_common()) if read is not None else {}
    # DESIGN.md's identity over the whole run: records_in == records_out + removed + rejected.
    stats = {**stats, "records_in": stats["records_in"] + sum(rejected.values()), "rejected": rejected,
             "rejected_first_at": dict(read.first_rejected_at) if read is not None else {}}
    if read is not None:
        read.finish()
        if not rejected and read.rejects_path is not None:
            read.rejects_path.unlink(missing_ok=True)  # an earlier run's, in this run's output folder
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    stats["records_per_second"] = round(stats["records_in"] / max(stats["seconds"], 1e-9), 1)
    _write_atomic(out_dir / STATS, [json.dumps(stats, indent=2, ensure_ascii=False)])
    return stats


def _concat(paths: Iterable[Path], dest: Path) -> None:
    # Written aside and renamed: a killed run never leaves an output that looks complete.
    tmp = dest.with_name(f".{dest.name}.partial")
    with tmp.open("w", encoding="utf-8") as out:
        for path in paths:
            with path.open(encoding="utf-8") as f:
                shutil.copyfileobj(f, out)
    os.replace(tmp, dest)


def _finish(r: _Run, out_dir: Path) -> dict[str, Any]:
    """Concatenate shard outputs in order, then count."""
    last = r.stages[-1].index
    _concat((shard_path(r.work, last, shard) for shard in range(r.shards)), out_dir / OUTPUT)
    if r.opts.write_rejects:
        _concat((shard_path(r.work, stage.index, shard, ".rejects.jsonl")
                 for stage in r.stages for shard in range(r.shards)), out_dir / REJECTS)

    counts = [[json.loads(shard_path(r.work, stage.index, shard, ".stats.json").read_text())
               for shard in range(r.shards)] for stage in r.stages]
    records_out = sum(1 for _ in (out_dir / OUTPUT).open(encoding="utf-8"))
    return {**summarise(r.stages, counts, records_out), "shards": r.shards, "shards_resumed": r.resumed,
            "workers": r.opts.workers, "stage_seconds": r.timings}


def summarise(stages: list[Stage], counts: list[list[dict[str, Any]]], records_out: int) -> dict[str, Any]:
    """Sum the shards' counts (`counts[stage][shard]`) per operator and check that they add up."""
    operators: dict[str, dict[str, Any]] = {}
    records_in = sum(c["in"] for c in counts[0])
    for stage, shards in zip(stages, counts):
        for op in stage.ops:
            operators[op.label] = {"op": op.op, "in": 0, "modified": 0, "removed": Counter()}
        for c_shard in shards:
            for name, c in c_shard["ops"].items():
                o = operators[name]
                o["in"] += c["in"]
                o["modified"] += c["modified"]
                o["removed"].update(c["removed"])
    removed = Counter({f"{name}/{reason}": n for name, o in operators.items() for reason, n in o["removed"].items()})
    if records_in != records_out + sum(removed.values()):
        raise RuntimeError(f"curation lost records: {records_in} in != {records_out} kept + "
                           f"{sum(removed.values())} removed {dict(removed)}")
    return {"records_in": records_in, "records_out": records_out, "removed": dict(removed.most_common()),
            "operators": [{"name": k, **v, "removed": dict(v["removed"])} for k, v in operators.items()]}

