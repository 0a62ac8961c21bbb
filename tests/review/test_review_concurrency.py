"""Two reviewers in two processes at once: every item reviewed exactly once, nothing lost."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

from tuneforge.review import ReviewStore, export, import_samples, store_path
from tuneforge.types import Message, Sample

N = 80


def _review_all(project: str, reviewer: str, start: Any, out: mp.Queue) -> None:
    """Review until nothing is left: edit the first candidate, choose the second, done."""
    done = []
    with ReviewStore.open(project) as store:
        start.wait(timeout=60)  # both processes begin together
        while (item := store.next_item(reviewer)) is not None:
            time.sleep(0.003)  # reading the item; without a pause one tight loop starves the other of the lock
            store.edit(item.id, reviewer, 0, f"edited by {reviewer}")
            store.choose(item.id, reviewer, 1)
            store.done(item.id, reviewer)
            done.append(item.id)
    out.put((reviewer, done))


def test_two_reviewer_processes_neither_lose_nor_double_count(tmp_path: Path):
    with ReviewStore.open(tmp_path) as store:
        samples = [Sample(messages=[Message("user", f"question {i}"), Message("assistant", f"{who} {i}")])
                   for i in range(N) for who in ("teacher", "student")]
        assert import_samples(store, samples).added == 2 * N
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    start = ctx.Barrier(2)
    workers = [ctx.Process(target=_review_all, args=(str(tmp_path), name, start, out)) for name in ("ann", "bob")]
    for w in workers:
        w.start()
    results = dict(out.get(timeout=60) for _ in workers)
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    ann, bob = set(results["ann"]), set(results["bob"])
    assert len(results["ann"]) == len(ann) and len(results["bob"]) == len(bob)  # nobody got an item twice
    assert not ann & bob and ann | bob == set(range(1, N + 1))
    assert ann and bob  # both worked at once

    with ReviewStore(store_path(tmp_path)) as store:
        for item in store.items():
            assert item.state.done and len(item.state.reviewers) == 1
            assert [e.action for e in item.events] == ["edit", "choose", "done"]
        report = export(store, "dpo", tmp_path / "dpo.jsonl")
    assert (report.items, report.items_exported, report.records) == (N, N, N)
