"""The Ray executor (`executor: ray`): the local runner's stages, shards and per-shard functions
(`pipeline.py`), run as Ray tasks on a Ray cluster. Shards are cut and numbered exactly as the local
runner cuts them, so the output, the rejects and the counts are byte-identical to a local run with
any number of workers.

Ray tasks rather than Ray Data: the shard is the unit both executors share (its boundaries fix the
order of the rejects, and a global operator needs each record's global index), and Ray Data's
streaming blocks keep neither.

Shards live in Ray's object store, not in files: only the driver reads the inputs and writes the
output folder, so the cluster needs no shared filesystem (but an operator that reads a file when it
is built — a blocklist, a reference set — needs that path on every node, and every node needs
tuneforge installed). There are no resume markers: Ray retries a task whose worker died, and a run
that fails starts over.

MinHash near-dedup runs distributed; nothing the size of the data reaches the driver:

1. per shard, the operator's own `keys`: shingles, signatures, band hashes (they stay in the store);
2. every (band, band hash, record) row goes to a partition chosen by its band hash; per partition,
   rows grouped by (band, hash) are the LSH buckets, turned into candidate pairs by the same
   `minhash.bucket_pairs` the local path uses (so large buckets are chained the same way);
3. candidate pairs grouped by the two shards they join; per group, the same exact-Jaccard check;
4. in the driver: connected components of the verified edges (one union-find over the edges) and
   the `keep:` rule, which need one number per record.

Other global operators (exact and semantic dedup) compute their keys per shard in tasks and decide
in the driver, as the local runner does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.curate import minhash as mh
from tuneforge.curate.base import OpConfig
from tuneforge.curate.dedup import KeepFacts, MinHashDedup, NearKeys, representatives
from tuneforge.curate.pipeline import (OUTPUT, REJECTS, RunOptions, Stage, apply_verdicts, chunked, map_records,
                                       parse_lines, plan, recipe_key, stage_ops, summarise, write_stats)
from tuneforge.errors import MissingDependency
from tuneforge.types import Sample


def run(samples: Iterable[Sample], ops: list[OpConfig], out_dir: Path | str, options: RunOptions | None = None,
        address: str | None = None) -> dict[str, Any]:
    """Curate `samples` with `ops` into `out_dir` on Ray. Joins the Ray instance this process already
    started, else `ray.init(address=address)` (None: a new local Ray on this machine, shut down at
    the end). `options.workers` and `options.resume` are the local runner's: Ray uses its cluster's CPUs."""
    try:
        import ray
    except ImportError as e:
        raise MissingDependency("ray", "ray", "executor: ray") from e
    opts = options or RunOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stages = plan(ops)
    t0 = time.perf_counter()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address)
    try:
        stats = _RayRun(ray, recipe_key(ops, opts.shard_size)).run(samples, stages, opts, out_dir)
    finally:
        if started:
            ray.shutdown()
    return write_stats(out_dir, stats, t0)


# ---------------------------------------------------------------- task bodies (wrapped by ray.remote)


def _map(key: str, stage: Stage, shard: list[Sample] | list[str]) -> tuple[Any, ...]:
    """A map stage on one shard: the input's samples (stage 0) or the previous stage's kept lines."""
    result = map_records(stage_ops(key, stage), shard if stage.index == 0 else parse_lines(shard))
    return (*result, len(result.kept))


def _keys(key: str, stage: Stage, lines: list[str]) -> tuple[Any, list[str]]:
    samples = parse_lines(lines)
    return stage_ops(key, stage)[0].keys(samples), [s.where for s in samples]


def _filter(key: str, stage: Stage, lines: list[str], dup_of: list[str | None]) -> tuple[Any, ...]:
    result = apply_verdicts(stage_ops(key, stage)[0], lines, dup_of)
    return (*result, len(result.kept))


def _pick(wheres: list[str], idx: list[int]) -> list[str]:
    return [wheres[i] for i in idx]


Rows = tuple[np.ndarray, np.ndarray, np.ndarray]
"""LSH band rows: band index, band hash, global record index."""


def _band_rows(keys: NearKeys, lo: int, parts: int) -> tuple[Any, ...]:
    """This shard's keep facts, then its band rows split into `parts` partitions by band hash
    (every row of one bucket lands in the same partition, whichever shard it comes from)."""
    valid = np.flatnonzero(keys.shingles.sizes() > 0)  # an empty text has no shingles to compare
    bh = keys.bands[valid]  # (v, bands)
    band = np.tile(np.arange(bh.shape[1], dtype=np.int64), len(valid))
    h = bh.ravel()
    record = np.repeat(valid + lo, bh.shape[1])
    part = (h % np.uint64(parts)).astype(np.int64)
    order = np.argsort(part, kind="stable")
    cuts = np.searchsorted(part[order], np.arange(1, parts))
    split = [np.split(x[order], cuts) for x in (band, h, record)]
    return (keys.base, *zip(*split))


def _bucket_pairs(n: int, *rows: Rows) -> np.ndarray:
    """Sorted unique candidate pair codes (i * n + j) of one partition of band rows."""
    band, h, record = (np.concatenate(x) for x in zip(*rows))
    order = np.lexsort((record, h, band))  # by bucket, then by record as in the local path
    a, b = mh.bucket_pairs([band[order], h[order]], record[order])
    return mh.sorted_unique(a * n + b)


def _verify(pairs: np.ndarray, first: NearKeys, second: NearKeys, lo_first: int, lo_second: int,
            threshold: float) -> np.ndarray:
    """The pairs (record i in `first`'s shard, j in `second`'s) whose shingle sets reach the threshold."""
    a, b = first.shingles, second.shingles
    i, j = pairs[:, 0] - lo_first, pairs[:, 1] - lo_second
    maybe = mh.may_reach(a.sizes()[i], b.sizes()[j], threshold)
    ok = [mh.jaccard(a.doc(x), b.doc(y)) >= threshold for x, y in zip(i[maybe].tolist(), j[maybe].tolist())]
    return pairs[maybe][np.array(ok, bool)]


# ---------------------------------------------------------------- the driver


class _RayRun:
    def __init__(self, ray: Any, key: str):
        self.ray, self.key = ray, key
        self.map = ray.remote(num_returns=4)(_map)
        self.keys = ray.remote(num_returns=2)(_keys)
        self.filter = ray.remote(num_returns=4)(_filter)
        self.pick = ray.remote(_pick)
        self.band_rows = ray.remote(_band_rows)
        self.bucket_pairs = ray.remote(_bucket_pairs)
        self.verify = ray.remote(_verify)
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def run(self, samples: Iterable[Sample], stages: list[Stage], opts: RunOptions, out_dir: Path) -> dict[str, Any]:
        ray = self.ray
        lines: list[Any] = []  # refs to the kept lines of each shard after the latest stage
        rejects: list[list[Any]] = []  # per stage, refs to each shard's reject lines
        counts: list[list[dict[str, Any]]] = []
        sizes: list[int] = []
        timings: dict[str, float] = {}
        for stage in stages:
            ts = time.perf_counter()
            if stage.index == 0:
                results = [self.map.remote(self.key, stage, chunk) for chunk in chunked(samples, opts.shard_size)]
            elif stage.is_global:
                results = self.global_stage(stage, lines, sizes)
            else:
                results = [self.map.remote(self.key, stage, shard) for shard in lines]
            lines = [r[0] for r in results]
            rejects.append([r[1] for r in results])
            counts.append(ray.get([r[2] for r in results]))  # waits for the stage, for its timing
            sizes = ray.get([r[3] for r in results])
            timings[stage.label] = round(time.perf_counter() - ts, 3)

        with (out_dir / OUTPUT).open("w", encoding="utf-8") as f:
            for ref in lines:  # one shard in the driver's memory at a time, in shard order
                f.writelines(ray.get(ref))
        if opts.write_rejects:
            with (out_dir / REJECTS).open("w", encoding="utf-8") as f:
                for ref in (ref for stage_rejects in rejects for ref in stage_rejects):
                    f.writelines(ray.get(ref))
        return {**summarise(stages, counts, sum(sizes)), "shards": len(lines), "shards_resumed": 0,
                "workers": self.cpus, "stage_seconds": timings}

    def global_stage(self, stage: Stage, lines: list[Any], sizes: list[int]) -> list[Any]:
        """Keys per shard, one decision, then the verdicts applied per shard; a removed record's
        rejects detail names where its original came from, fetched from the original's shard."""
        ray = self.ray
        lo = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        keys = [self.keys.remote(self.key, stage, shard) for shard in lines]
        cfg = stage.ops[0]
        if not lo[-1]:
            dup_of = np.zeros(0, np.int64)
        elif isinstance(cfg, MinHashDedup):
            dup_of = self.near_duplicates(cfg, [k[0] for k in keys], lo)
        else:
            dup_of = stage_ops(self.key, stage)[0].decide(ray.get([k[0] for k in keys]))
        targets = np.unique(dup_of[dup_of >= 0])
        owner = np.searchsorted(lo, targets, side="right") - 1
        picks = {int(s): self.pick.remote(keys[s][1], (targets[owner == s] - lo[s]).tolist()) for s in np.unique(owner)}
        where = {int(t): w for s, ref in picks.items() for t, w in zip(targets[owner == s], ray.get(ref))}
        return [self.filter.remote(self.key, stage, shard,
                                   [None if j < 0 else where[j] for j in dup_of[lo[s]:lo[s + 1]].tolist()])
                for s, shard in enumerate(lines)]

    def near_duplicates(self, cfg: MinHashDedup, keys: list[Any], lo: np.ndarray) -> np.ndarray:
        """dup_of over all records, as `dedup.near_duplicates` decides it, computed distributed."""
        ray, n, shards = self.ray, int(lo[-1]), len(keys)
        parts = min(shards, self.cpus)
        rows = [self.band_rows.options(num_returns=1 + parts).remote(k, int(lo[s]), parts)
                for s, k in enumerate(keys)]
        codes = ray.get([self.bucket_pairs.remote(n, *(r[1 + p] for r in rows)) for p in range(parts)])
        code = mh.sorted_unique(np.concatenate(codes))
        pairs = np.stack([code // n, code % n], axis=1)  # (k, 2), i < j
        shard = np.searchsorted(lo, pairs, side="right") - 1  # (k, 2): whose shard holds each end
        group = shard[:, 0] * shards + shard[:, 1]
        order = np.argsort(group, kind="stable")
        pairs, group = pairs[order], group[order]
        starts = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]])) if len(group) else np.zeros(0, int)
        tasks = []
        for a, b in zip(starts.tolist(), [*starts[1:].tolist(), len(pairs)]):
            sa, sb = divmod(int(group[a]), shards)
            tasks.append(self.verify.remote(pairs[a:b], keys[sa], keys[sb], int(lo[sa]), int(lo[sb]), cfg.threshold))
        verified = ray.get(tasks)
        edges = np.concatenate(verified) if verified else np.zeros((0, 2), np.int64)
        facts = KeepFacts.concat(ray.get([r[0] for r in rows]))
        return representatives(mh.clusters(n, edges), facts, cfg.keep)
