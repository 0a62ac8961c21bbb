"""The Ray executor (`executor: ray`): the local runner's stages, shards and per-shard functions
(`pipeline.py`), run on Ray Data. Shards are cut and numbered exactly as the local runner cuts them,
and whatever fixes the output's order is read back in shard order (`preserve_order`, checked), so
the output, the rejects and the counts are byte-identical to a local run with any number of workers.

What runs where:

- the driver reads the inputs (a stream of samples), cuts shards and puts each one in Ray's object
  store as it goes: a Dataset with one row per shard (its number, then its records);
- every stage is a Dataset `map` of the local runner's per-shard function (`map_records`, or a
  global operator's `keys`, then `apply_verdicts`), materialised once per stage. The driver reads
  back each shard's counts and rejects (appended to `rejects.jsonl` stage by stage) and, at the
  end, the kept lines (written to the output, one shard in its memory at a time);
- MinHash near-dedup keeps the shingles in the cluster:
  1. per shard, the operator's own `keys` (shingles, signatures, band hashes);
  2. one row per record and band, (band, band hash, global record index), grouped by bucket and
     turned into candidate pairs by the same `minhash.bucket_pairs` as the local path, so large
     buckets are chained the same way. The group-by key is the band hash modulo a few partitions,
     and the buckets are split inside a group by sorting: `map_groups` calls Python once per group
     (some 0.25 ms each), and nearly every bucket holds a single record;
  3. the exact-Jaccard check: a join of the pairs with the shards' shingles, written as two
     group-bys by shard (each pair picks up its second record's shingles in that record's shard,
     then is verified in its first record's shard);
  4. in the driver: connected components of the verified edges and the `keep:` rule, from the
     edges and two facts per record (length, score); the verdicts (one number per record) go back
     to the workers, and only the kept originals' `where` is fetched for the rejects detail;
- exact and semantic dedup compute their keys per shard in Ray Data and decide in the driver, as the
  local runner does (a hash, or an embedding, per record reaches it).

Limits: only the driver reads the inputs and writes the output folder, so the cluster needs no
shared filesystem, but an operator that reads a file when it is built (a blocklist, a reference
set) needs that path on every node, and every node needs tuneforge installed. There are no resume
markers: Ray retries a task whose worker died, and a run that fails starts over. Every candidate
pair is verified (the local path skips pairs already joined), so heavily duplicated data costs more
Jaccard checks here, with the same result. Ray Data's settings (`DataContext.get_current()`:
progress bars, shuffle strategy, memory) apply; the run adds `preserve_order` on a copy of them.
Each Dataset execution costs a fraction of a second, so a tiny input takes seconds.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.curate import minhash as mh
from tuneforge.curate.base import OpConfig
from tuneforge.curate.dedup import KeepFacts, MinHashDedup, representatives
from tuneforge.curate.pipeline import (
    OUTPUT,
    REJECTS,
    RunOptions,
    ShardResult,
    Stage,
    apply_verdicts,
    chunked,
    map_records,
    parse_lines,
    plan,
    recipe_key,
    stage_ops,
    summarise,
    write_stats,
)
from tuneforge.errors import MissingDependency
from tuneforge.io.report import ReadReport
from tuneforge.types import Sample


def run(samples: Iterable[Sample], ops: list[OpConfig], out_dir: Path | str, options: RunOptions | None = None,
        address: str | None = None, read: ReadReport | None = None) -> dict[str, Any]:
    """Curate `samples` with `ops` into `out_dir` on Ray. Joins the Ray instance this process already
    started, else `ray.init(address=address)` (None: a new local Ray on this machine, shut down at
    the end). `options.workers` and `options.resume` are the local runner's: Ray uses its cluster's CPUs."""
    try:
        import ray
        from ray.data import DataContext
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
    ctx = DataContext.get_current().copy()  # a copy: the caller's own Datasets keep their settings
    ctx.execution_options.preserve_order = True
    try:
        with DataContext.current(ctx):
            stats = _RayDataRun(ray, recipe_key(ops, opts.shard_size), opts, out_dir).run(samples, stages)
    finally:
        if started:
            ray.shutdown()
    return write_stats(out_dir, stats, t0, read)


# ---------------------------------------------------------------- per-shard rows (Dataset.map)


def _stage_row(shard: int, result: ShardResult) -> dict[str, Any]:
    """A stage's output for one shard: what the next stage reads, and what the driver reads back."""
    return {"shard": shard, "lines": result.kept, "rejects": result.rejects, "counts": json.dumps(result.counts),
            "kept": len(result.kept)}


def _map(row: dict[str, Any], key: str, stage: Stage) -> dict[str, Any]:
    """A map stage on one shard: the input's samples (stage 0) or the previous stage's kept lines."""
    samples = pickle.loads(row["samples"]) if stage.index == 0 else parse_lines(row["lines"])
    return _stage_row(row["shard"], map_records(stage_ops(key, stage), samples))


def _keys(row: dict[str, Any], key: str, stage: Stage) -> dict[str, Any]:
    return {"shard": row["shard"], "keys": pickle.dumps(stage_ops(key, stage)[0].keys(parse_lines(row["lines"])))}


def _pick_wheres(row: dict[str, Any], targets: dict[int, list[int]]) -> dict[str, Any]:
    """Where the kept originals among this shard's records came from (only those are parsed)."""
    lines = row["lines"]
    return {"shard": row["shard"],
            "wheres": [Sample.from_dict(json.loads(lines[i])).where for i in targets.get(row["shard"], [])]}


def _filter(row: dict[str, Any], key: str, stage: Stage, dup_of: np.ndarray, lo: np.ndarray,
            where: dict[int, str]) -> dict[str, Any]:
    s = row["shard"]
    verdicts = [None if j < 0 else where[j] for j in dup_of[lo[s]:lo[s + 1]].tolist()]
    return _stage_row(s, apply_verdicts(stage_ops(key, stage)[0], row["lines"], verdicts))


# ---------------------------------------------------------------- MinHash rows (map_batches, map_groups)


def _band_rows(batch: dict[str, np.ndarray], lo: np.ndarray, parts: int) -> dict[str, np.ndarray]:
    """One row per (record, band) of these shards' records that have shingles (an empty text has
    nothing to compare). `part`, the band hash modulo `parts`, puts every row of a bucket in one group."""
    band, h, record = [], [], []
    for shard, blob in zip(batch["shard"].tolist(), batch["keys"]):
        keys = pickle.loads(blob)
        valid = np.flatnonzero(keys.shingles.sizes() > 0)
        bh = keys.bands[valid]  # (v, bands)
        band.append(np.tile(np.arange(bh.shape[1], dtype=np.int64), len(valid)))
        h.append(bh.ravel())
        record.append(np.repeat(valid + lo[shard], bh.shape[1]))
    hashes = np.concatenate(h).astype(np.uint64)
    return {"part": (hashes % np.uint64(parts)).astype(np.int64), "band": np.concatenate(band).astype(np.int64),
            "hash": hashes, "record": np.concatenate(record).astype(np.int64)}


def _bucket_pairs(group: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The unique candidate pairs (i < j) of one partition's LSH buckets."""
    band, h, record = group["band"], group["hash"], group["record"]
    order = np.lexsort((record, h, band))  # by bucket, then by record as in the local path
    a, b = mh.bucket_pairs([band[order], h[order]], record[order])
    code = mh.sorted_unique(a * n + b)
    return {"i": code // n, "j": code % n}


def _shingle_row(row: dict[str, Any]) -> dict[str, Any]:
    """A shard's shingles as a row of the join (i = j = -1 marks it)."""
    return {"shard": row["shard"], "i": -1, "j": -1, "blob": pickle.dumps(pickle.loads(row["keys"]).shingles)}


def _pair_rows(shard: np.ndarray, i: np.ndarray, j: np.ndarray, blobs: list[bytes] | None = None) -> dict[str, Any]:
    blob = np.empty(len(i), object)
    blob[:] = blobs if blobs is not None else [b""] * len(i)
    return {"shard": shard.astype(np.int64), "i": i.astype(np.int64), "j": j.astype(np.int64), "blob": blob}


def _by_second(batch: dict[str, np.ndarray], lo: np.ndarray) -> dict[str, Any]:
    """Candidate pairs keyed by the shard that holds their second record."""
    return _pair_rows(np.searchsorted(lo, batch["j"], side="right") - 1, batch["i"], batch["j"])


def _split_group(group: dict[str, np.ndarray]) -> tuple[int, mh.Shingles, np.ndarray]:
    """A join group: its shard, that shard's shingles, and which of its rows are pairs."""
    pair = group["i"] >= 0
    return int(group["shard"][0]), pickle.loads(group["blob"][~pair][0]), pair


def _attach_second(group: dict[str, np.ndarray], lo: np.ndarray) -> dict[str, Any]:
    """Each pair whose second record is in this shard, with that record's shingles, keyed by the
    shard of its first record. A pair found in several bands arrives several times: kept once."""
    s, sh, pair = _split_group(group)
    n = int(lo[-1])
    code = mh.sorted_unique(group["i"][pair] * n + group["j"][pair])
    i, j = code // n, code % n
    return _pair_rows(np.searchsorted(lo, i, side="right") - 1, i, j,
                      [sh.doc(x).tobytes() for x in (j - lo[s]).tolist()])


def _verify(group: dict[str, np.ndarray], lo: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Pairs whose first record is in this shard and whose shingle sets reach the threshold: enough of
    them for the same clusters. A pair already joined by the pairs verified before it is not checked
    (as in the local path), so a shard's cluster of k near-copies costs k - 1 checks, not k^2 / 2."""
    s, sh, pair = _split_group(group)
    i, j = group["i"][pair], group["j"][pair]
    first = i - lo[s]
    second = [np.frombuffer(b, np.uint32) for b in group["blob"][pair]]
    maybe = np.flatnonzero(mh.may_reach(sh.sizes()[first], np.array([len(x) for x in second], np.int64), threshold))
    # Union-find over this group's records only (numbered 0..m-1), not over every record of the run.
    nodes, local = np.unique(np.stack([i[maybe], j[maybe]], axis=1), return_inverse=True)
    local = local.reshape(-1, 2)
    index = {(a, b): k for a, b, k in zip(local[:, 0].tolist(), local[:, 1].tolist(), maybe.tolist())}
    kept: list[int] = []

    def accept(a: int, b: int) -> bool:
        k = index[a, b]
        ok = mh.jaccard(sh.doc(first[k]), second[k]) >= threshold
        if ok:
            kept.append(k)
        return ok

    mh.clusters(len(nodes), local, accept)
    return {"i": i[kept], "j": j[kept]}


def _facts(row: dict[str, Any]) -> dict[str, Any]:
    return {"shard": row["shard"], "facts": pickle.dumps(pickle.loads(row["keys"]).base)}


# ---------------------------------------------------------------- the driver


def _in_order(ds: Any, *columns: str) -> Iterator[dict[str, Any]]:
    """A per-shard Dataset's rows in shard order: `preserve_order` keeps it, and the output's bytes
    depend on it, so it is checked."""
    for k, row in enumerate(ds.select_columns(["shard", *columns]).iter_rows()):
        if row["shard"] != k:
            raise RuntimeError(f"Ray Data returned shard {row['shard']} where shard {k} was due")
        yield row


class _RayDataRun:
    def __init__(self, ray: Any, key: str, opts: RunOptions, out_dir: Path):
        self.ray, self.key, self.opts, self.out_dir = ray, key, opts, out_dir
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def run(self, samples: Iterable[Sample], stages: list[Stage]) -> dict[str, Any]:
        shards = self.read(samples)
        counts: list[list[dict[str, Any]]] = []
        sizes: list[int] = []
        timings: dict[str, float] = {}
        rejects = (self.out_dir / REJECTS).open("w", encoding="utf-8") if self.opts.write_rejects else None
        try:
            for stage in stages:
                ts = time.perf_counter()
                if stage.is_global:
                    out = self.global_stage(stage, shards, np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]))
                else:
                    out = shards.map(_map, fn_kwargs={"key": self.key, "stage": stage})
                out = out.materialize()
                counts.append([])
                sizes = []
                for row in _in_order(out, "counts", "kept", *(["rejects"] if rejects else [])):
                    if rejects:
                        rejects.writelines(row["rejects"])
                    counts[-1].append(json.loads(row["counts"]))
                    sizes.append(row["kept"])
                shards = out.select_columns(["shard", "lines"])
                timings[stage.label] = round(time.perf_counter() - ts, 3)
        finally:
            if rejects:
                rejects.close()
        with (self.out_dir / OUTPUT).open("w", encoding="utf-8") as f:
            for row in _in_order(shards, "lines"):
                f.writelines(row["lines"])
        return {**summarise(stages, counts, sum(sizes)), "shards": len(sizes), "shards_resumed": 0,
                "workers": self.cpus, "stage_seconds": timings}

    def read(self, samples: Iterable[Sample]) -> Any:
        """One Dataset row per shard, put in the object store as it is cut (the driver holds only
        references). Samples travel pickled: they are Python objects, not an Arrow schema."""
        import pyarrow as pa

        refs = [self.ray.put(pa.table({"shard": [k], "samples": [pickle.dumps(chunk)]}))
                for k, chunk in enumerate(chunked(samples, self.opts.shard_size))]
        return self.ray.data.from_arrow_refs(refs)

    def global_stage(self, stage: Stage, shards: Any, lo: np.ndarray) -> Any:
        """Keys per shard, one decision, then the verdicts applied per shard; a removed record's
        rejects detail names where its original came from, read from the original's shard."""
        keys = shards.map(_keys, fn_kwargs={"key": self.key, "stage": stage})
        cfg = stage.ops[0]
        if not lo[-1]:
            dup_of = np.zeros(0, np.int64)
        elif isinstance(cfg, MinHashDedup):
            dup_of = self.near_duplicates(cfg, keys.materialize(), lo)  # read three times
        else:
            dup_of = stage_ops(self.key, stage)[0].decide([pickle.loads(r["keys"]) for r in _in_order(keys, "keys")])
        targets = np.unique(dup_of[dup_of >= 0])
        owner = np.searchsorted(lo, targets, side="right") - 1
        owned = {int(s): targets[owner == s] for s in np.unique(owner)}  # global indices, by shard
        where: dict[int, str] = {}
        if owned:
            local = {s: (t - lo[s]).tolist() for s, t in owned.items()}
            picked = shards.map(_pick_wheres, fn_kwargs={"targets": local})
            where = {t: w for row in _in_order(picked, "wheres") if row["shard"] in owned
                     for t, w in zip(owned[row["shard"]].tolist(), row["wheres"])}
        return shards.map(_filter, fn_kwargs={"key": self.key, "stage": stage, "dup_of": dup_of, "lo": lo,
                                              "where": where})

    def near_duplicates(self, cfg: MinHashDedup, keys: Any, lo: np.ndarray) -> np.ndarray:
        """dup_of over all records, as `dedup.near_duplicates` decides it, computed on Ray Data."""
        n, shards = int(lo[-1]), len(lo) - 1
        parts = min(shards, self.cpus)
        bands = keys.map_batches(_band_rows, batch_size=1, batch_format="numpy", fn_kwargs={"lo": lo, "parts": parts})
        pairs = bands.groupby("part", num_partitions=parts).map_groups(_bucket_pairs, batch_format="numpy",
                                                                         fn_kwargs={"n": n})
        shingles = keys.map(_shingle_row)
        by_shard = {"key": "shard", "num_partitions": parts}
        attached = (pairs.map_batches(_by_second, batch_format="numpy", fn_kwargs={"lo": lo}).union(shingles)
                    .groupby(**by_shard).map_groups(_attach_second, batch_format="numpy", fn_kwargs={"lo": lo}))
        verified = attached.union(shingles).groupby(**by_shard).map_groups(
            _verify, batch_format="numpy", fn_kwargs={"lo": lo, "threshold": cfg.threshold})
        batches = list(verified.iter_batches(batch_format="numpy", batch_size=None))
        none = np.zeros(0, np.int64)
        edges = np.stack([np.concatenate([none, *(b.get(c, none) for b in batches)]) for c in "ij"], axis=1)
        facts = KeepFacts.concat([pickle.loads(r["facts"]) for r in _in_order(keys.map(_facts), "facts")])
        return representatives(mh.clusters(n, edges), facts, cfg.keep)
