"""MinHash near-dedup throughput: tuneforge's vectorised MinHash LSH vs a datasketch reference with the
same shingling (word 3-grams, character 3-grams for Chinese, same normalisation), the same
permutations (128, seed 1, datasketch's default affine32 scheme), the same bands (42 x 3), the same
threshold (0.5, our default) and the same exact-Jaccard verification and clustering. Each side runs in its own
child process, alternating, on the same records; peak memory is the child's RSS growth.

Then the docs/s of the whole English recipe (examples/curate/english-instructions.yaml operators)
with 1 and 2 workers, alternating for `--recipe-rounds` rounds, best of each.

    python benchmarks/dedup_throughput.py [--n 100000] [--rounds 1] [--recipe-n 20000] [--recipe-rounds 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / ".." / "shared" / "datasets"


def corpus(n: int, seed: int = 0) -> list[str]:
    """n documents built from sentences of the alpaca en + zh demo sets, 10% of them near-duplicates
    (a few words or characters edited) of an earlier one."""
    sentences: list[str] = []
    for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json"):
        for r in json.loads((DATASETS / name).read_text(encoding="utf-8")):
            sentences += [s for s in re.split(r"(?<=[.!?。！？])\s*", r["output"]) if len(s) > 15]
    rnd = random.Random(seed)
    docs: list[str] = []
    for _ in range(n):
        if docs and rnd.random() < 0.1:
            words = rnd.choice(docs).split(" ")
            for _ in range(max(1, len(words) // 30)):
                words[rnd.randrange(len(words))] = rnd.choice(["alpha", "beta", "gamma", "的"])
            docs.append(" ".join(words))
        else:
            docs.append(" ".join(rnd.choice(sentences) for _ in range(rnd.randint(3, 8))))
    return docs


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def ours(texts: list[str]) -> list[int]:
    import numpy as np

    from tuneforge.curate import parse_op
    from tuneforge.types import Sample

    op = parse_op({"op": "minhash_dedup", "threshold": 0.5, "bands": 42, "rows": 3}, "bench").build()
    keys = [op.keys([Sample(text=t) for t in texts[i:i + 5000]]) for i in range(0, len(texts), 5000)]
    return np.flatnonzero(op.decide(keys) >= 0).tolist()


def reference(texts: list[str]) -> list[int]:
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    from tuneforge.curate.minhash import clusters, normalise
    from tuneforge.text import is_cjk

    def shingles(text: str) -> set[str]:
        norm = normalise(text)
        if is_cjk(norm):
            toks, sep = list(norm.replace(" ", "")), ""
        else:
            toks, sep = norm.split(), " "
        if 0 < len(toks) < 3:
            return {sep.join(toks)}
        return {sep.join(toks[i:i + 3]) for i in range(len(toks) - 2)}

    lsh = MinHashLSH(threshold=0.5, num_perm=128, params=(42, 3))
    sets, edges = [], []
    for i, t in enumerate(texts):
        s = shingles(t)
        sets.append(s)
        if not s:
            continue
        m = MinHash(num_perm=128, seed=1)
        m.update_batch([g.encode("utf-8") for g in s])
        for j in lsh.query(m):
            if len(s & sets[j]) / len(s | sets[j]) >= 0.5:
                edges.append((j, i))
        lsh.insert(i, m)
    roots = clusters(len(texts), np.array(edges, np.int64).reshape(-1, 2))
    return np.flatnonzero(roots != np.arange(len(texts))).tolist()


def _child(fn_name: str, texts: list[str], q: mp.Queue) -> None:
    base = _rss_kb()
    t0 = time.perf_counter()
    dups = globals()[fn_name](texts)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    q.put({"seconds": seconds, "peak_mb": max(peak - base, 0) / 1024, "dups": dups})


def measure(fn_name: str, texts: list[str]) -> dict:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn_name, texts, q))
    p.start()
    out = q.get()
    p.join()
    return out


def recipe_samples(n: int) -> list:
    from tuneforge.types import Message, Sample

    rows = json.loads((DATASETS / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    rnd = random.Random(1)
    samples = []
    for i in range(n):
        r = rows[i % len(rows)]
        tail = f" (variant {rnd.randrange(10**6)})" if i >= len(rows) else ""
        samples.append(Sample(messages=[Message("user", r["instruction"] + tail),
                                        Message("assistant", r["output"] + tail)],
                              meta={"source": "alpaca_en_demo.json", "line": i % len(rows) + 1}))
    return samples


def recipe_throughput(samples: list, workers: int) -> float:
    from tuneforge.curate import RunOptions, load_recipe, run

    recipe = load_recipe(ROOT / "examples" / "curate" / "english-instructions.yaml")
    with tempfile.TemporaryDirectory() as d:
        stats = run(samples, recipe.operators, d, RunOptions(workers=workers, shard_size=2000))
    return stats["records_in"] / stats["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--recipe-n", type=int, default=20_000)
    ap.add_argument("--recipe-rounds", type=int, default=3)
    args = ap.parse_args()
    texts = corpus(args.n)
    runs: dict[str, list[dict]] = {"tuneforge": [], "datasketch": []}
    for _ in range(args.rounds):
        for name, fn in (("tuneforge", "ours"), ("datasketch", "reference")):
            runs[name].append(measure(fn, texts))
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    ours_dups, ref_dups = set(best["tuneforge"]["dups"]), set(best["datasketch"]["dups"])
    agree = len(ours_dups & ref_dups) / max(len(ours_dups | ref_dups), 1)
    rows = {k: {"docs_per_s": round(args.n / r["seconds"], 1), "seconds": round(r["seconds"], 2),
                "peak_mb": round(r["peak_mb"], 1), "duplicates": len(r["dups"])} for k, r in best.items()}
    print(f"{'impl':<12}{'docs/s':>12}{'seconds':>10}{'peak MB':>10}{'dups':>8}   ({args.n} records)")
    for k, r in rows.items():
        print(f"{k:<12}{r['docs_per_s']:>12}{r['seconds']:>10}{r['peak_mb']:>10}{r['duplicates']:>8}")
    ratio = rows["tuneforge"]["docs_per_s"] / rows["datasketch"]["docs_per_s"]
    print(f"speed ratio {ratio:.2f}x, duplicate-set agreement (Jaccard) {agree:.4f}")
    samples = recipe_samples(args.recipe_n)
    recipe = {f"workers_{w}": 0.0 for w in (1, 2)}
    for _ in range(args.recipe_rounds):  # alternating, best of each: other load on the machine only slows a run
        for w in (1, 2):
            recipe[f"workers_{w}"] = max(recipe[f"workers_{w}"], round(recipe_throughput(samples, w), 1))
    print(f"english-instructions recipe, {args.recipe_n} records: "
          + ", ".join(f"{k} {v} docs/s" for k, v in recipe.items()))
    print(json.dumps({"benchmark": "dedup_throughput", "records": args.n, **{k: rows[k] for k in rows},
                      "ratio": round(ratio, 2), "agreement": round(agree, 4), "recipe": recipe}))


if __name__ == "__main__":
    sys.exit(main())
