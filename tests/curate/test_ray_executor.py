"""The Ray executor (Ray Data, in Ray local mode): byte-identical output, rejects and counts to the local
runner with 1 and 2 workers; the install hint when Ray is missing."""

from __future__ import annotations

import json
import sys

import pytest
from test_pipeline import OPS, dataset, ops

from tuneforge.curate import REJECTS, STATS, RunOptions, curate, parse_recipe, run
from tuneforge.curate.pipeline import OUTPUT
from tuneforge.errors import MissingDependency

RUN_FACTS = ("seconds", "records_per_second", "stage_seconds", "workers")  # timings and parallelism
# Ray Data warns about its own deprecated settings each time it copies a DataContext
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


@pytest.fixture(scope="module")
def ray_local():
    """One small local Ray for the module. No progress bars in test logs; and Ray Data's sort-based
    shuffle, which on two CPUs starts several times faster than its default hash shuffle (the
    executor relies only on what both guarantee: rows grouped by key)."""
    ray = pytest.importorskip("ray")
    from ray.data import DataContext

    ray.init(num_cpus=2, include_dashboard=False)
    ctx = DataContext.get_current()
    saved = ctx.enable_progress_bars, ctx.shuffle_strategy
    ctx.enable_progress_bars, ctx.shuffle_strategy = False, "sort_shuffle_pull_based"
    yield ray
    ctx.enable_progress_bars, ctx.shuffle_strategy = saved
    ray.shutdown()


def result(out) -> tuple[bytes, bytes, dict]:
    stats = json.loads((out / STATS).read_text())
    counts = {k: v for k, v in stats.items() if k not in RUN_FACTS}
    return (out / OUTPUT).read_bytes(), (out / REJECTS).read_bytes(), counts


# the pipeline tests' recipe; and MinHash alone at 0.5, where the forty "Answer i: plants grow ..."
# answers form one cluster and LSH buckets of up to 120 records take the large-bucket path
NEAR = [{"op": "minhash_dedup", "fields": ["assistant"], "threshold": 0.5, "keep": "longest"}]


@pytest.mark.parametrize("raw", [OPS, NEAR], ids=["recipe", "large-buckets"])
def test_ray_matches_one_and_two_local_workers_byte_for_byte(ray_local, tmp_path, raw):
    for w in (1, 2):
        run(dataset() * 3, ops(raw), tmp_path / f"local{w}", RunOptions(workers=w, shard_size=10))
    recipe = parse_recipe({"inputs": [], "output": {"dir": str(tmp_path / "ray"), "report": False},
                           "executor": {"kind": "ray", "shard_size": 10}, "operators": raw}, tmp_path)
    stats = curate(recipe, samples=iter(dataset() * 3))  # a stream: the driver ships the shards
    assert stats["workers"] == 2  # the Ray instance's CPUs
    # the run's Ray Data settings (preserve_order) were its own copy's
    assert not ray_local.data.DataContext.get_current().execution_options.preserve_order
    local = result(tmp_path / "local1")
    assert local == result(tmp_path / "local2") == result(tmp_path / "ray")
    assert local[2]["shards"] == 15 and sum(local[2]["removed"].values()) == local[1].count(b"\n") > 100


def test_executor_ray_shorthand_and_address(tmp_path):
    base = {"inputs": [], "output": {"dir": "out"}, "operators": []}
    assert parse_recipe({**base, "executor": "ray"}, tmp_path).executor.kind == "ray"
    spec = parse_recipe({**base, "executor": {"kind": "ray", "address": "ray://head:10001"}}, tmp_path).executor
    assert spec.address == "ray://head:10001"


def test_missing_ray_names_the_extra(tmp_path, monkeypatch):
    from tuneforge.curate.ray_executor import run as run_on_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(MissingDependency, match=r"needed for executor: ray\): pip install 'tuneforge\[ray\]'"):
        run_on_ray(dataset(), ops(), tmp_path)


def test_verify_skips_pairs_already_joined(monkeypatch):
    """Four copies in one shard: every pair is a candidate, three checks join them; a far-off record
    is checked against each and stays apart. (No Ray needed: the group is built as the join hands it over.)"""
    import pickle

    import numpy as np

    from tuneforge.curate import minhash as mh
    from tuneforge.curate.ray_executor import _pair_rows, _verify

    texts = ["the cat sat on the warm mat today"] * 4 + ["a completely different sentence about stars"]
    sh = mh.shingle(texts)
    pairs = [(a, b) for a in range(5) for b in range(a + 1, 5)]
    i, j = (np.array(x) for x in zip(*pairs))
    rows = _pair_rows(np.zeros(len(pairs)), i, j, [sh.doc(b).tobytes() for b in j.tolist()])
    group = {k: np.concatenate([rows[k], v]) for k, v in _pair_rows(np.zeros(1), np.array([-1]), np.array([-1]),
                                                                     [pickle.dumps(sh)]).items()}
    checks = []
    jaccard = mh.jaccard
    monkeypatch.setattr(mh, "jaccard", lambda a, b: checks.append(1) or jaccard(a, b))
    out = _verify(group, np.array([0, 5]), threshold=0.5)
    assert len(checks) == 3 + 4  # 3 of the 6 pairs among the copies; the far-off record's 4, refused
    edges = np.stack([out["i"], out["j"]], axis=1)
    assert mh.clusters(5, edges).tolist() == [0, 0, 0, 0, 4]
