"""The runner: accounting invariant, rejects file, worker-count independence, resume, recipes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import pytest
from curate_samples import chat

from tuneforge.curate import REJECTS, STATS, OpConfig, RunOptions, load_recipe, parse_op, register, run
from tuneforge.curate.pipeline import OUTPUT
from tuneforge.errors import ConfigError
from tuneforge.types import Sample

EXAMPLES = Path(__file__).parents[2] / "examples" / "curate"


def dataset() -> list[Sample]:
    base = [chat(f"Question number {i}: how do plants grow?", f"Answer {i}: plants grow with light, water and soil.",
                 source="d.jsonl", line=i + 1) for i in range(40)]
    extra = [
        chat("Q dup", "Answer 3: plants grow with light, water and soil.", source="d.jsonl", line=41),
        chat("法国的首都是哪里？", "作为一个人工智能语言模型，我无法回答。", source="d.jsonl", line=42),
        chat("empty", "   ", source="d.jsonl", line=43),
        chat("邮箱", "联系 zhang@example.com 或 13812345678", source="d.jsonl", line=44),
    ]
    return base + extra + [chat(s.messages[0].content, s.messages[1].content, source="d.jsonl", line=50 + i)
                           for i, s in enumerate(base[:5])]


OPS = [{"op": "normalize_whitespace"}, {"op": "answer"}, {"op": "machine_text"}, {"op": "pii"},
       {"op": "exact_dedup"}, {"op": "minhash_dedup", "fields": ["assistant"], "threshold": 0.6}]


def ops(raw=OPS) -> list[OpConfig]:
    return [parse_op(r, f"ops[{i}]") for i, r in enumerate(raw)]


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_counts_add_up_and_rejects_name_operator_reason_and_source(tmp_path):
    stats = run(dataset(), ops(), tmp_path, RunOptions(shard_size=7))
    removed = stats["removed"]
    assert stats["records_in"] == 49
    assert stats["records_in"] == stats["records_out"] + sum(removed.values())
    assert removed == {"exact_dedup/exact_duplicate": 5, "minhash_dedup/near_duplicate": 1,
                       "answer/empty_answer": 1, "machine_text/machine_generated": 1}
    kept = read(tmp_path / OUTPUT)
    assert len(kept) == stats["records_out"] == 41
    pii = next(k for k in kept if k["messages"][0]["content"] == "邮箱")
    assert pii["messages"][1]["content"] == "联系 <EMAIL> 或 <PHONE>"
    assert pii["meta"] == {"source": "d.jsonl", "line": 44, "pii": {"email": 1, "phone_cn": 1}}
    rejects = read(tmp_path / REJECTS)
    assert len(rejects) == sum(removed.values())
    empty = next(r for r in rejects if r["reason"] == "empty_answer")
    assert (empty["operator"], empty["where"]) == ("answer", "d.jsonl:43")
    exact = [r for r in rejects if r["reason"] == "exact_duplicate"]
    assert exact[0]["where"] == "d.jsonl:50" and exact[0]["detail"] == "duplicate of d.jsonl:1"
    near = next(r for r in rejects if r["reason"] == "near_duplicate")  # same answer, other question
    assert (near["where"], near["detail"]) == ("d.jsonl:41", "duplicate of d.jsonl:4")
    assert json.loads((tmp_path / STATS).read_text())["records_out"] == 41


@pytest.mark.parametrize("keep", ["first", "longest"])
def test_dedup_of_nothing(tmp_path, keep):
    """Empty input, and a recipe whose filters remove everything before the dedup stages."""
    dedup = [{"op": "exact_dedup", "keep": keep}, {"op": "minhash_dedup", "keep": keep},
             {"op": "semantic_dedup", "keep": keep}]
    assert run([], ops(dedup), tmp_path / "empty")["records_out"] == 0
    stats = run(dataset(), ops([{"op": "length", "max": 1}] + dedup), tmp_path / "all-gone")
    assert stats["records_out"] == 0 and sum(stats["removed"].values()) == 49


def test_keep_longest_and_score_rules(tmp_path):
    data = [chat("q", "the cat sat on the mat today", source="x", line=1, score=1),
            chat("q", "the cat sat on the mat today!!", source="x", line=2, score=5),
            chat("q", "The cat sat on the mat, today.", source="x", line=3, score=2)]
    run(data, ops([{"op": "exact_dedup", "keep": "score"}]), tmp_path)
    assert [k["meta"]["line"] for k in read(tmp_path / OUTPUT)] == [2]
    data[2].messages[1].content = "The cat sat on the mat, today. Indeed."
    run(data, ops([{"op": "minhash_dedup", "keep": "longest", "threshold": 0.5}]), tmp_path)
    assert [k["meta"]["line"] for k in read(tmp_path / OUTPUT)] == [3]


def test_same_output_with_one_and_two_workers_from_memory_or_a_stream(tmp_path):
    outs = []
    # a list is read by the workers themselves, by range; a stream is shipped to them in shards
    for w, source in ((1, list), (2, list), (2, iter)):
        d = tmp_path / f"w{w}{source.__name__}"
        run(source(dataset() * 3), ops(), d, RunOptions(workers=w, shard_size=10))
        outs.append(((d / OUTPUT).read_bytes(), (d / REJECTS).read_bytes()))
    assert outs[0] == outs[1] == outs[2]
    assert outs[0][1].count(b"\n") == 8 + 2 * 49  # the first copy's 8 removals, then copies 2 and 3 whole


@register
class _Crash(OpConfig):
    """Test-only: raises on one record while a flag file exists, like a run killed mid-way."""

    op: Literal["test_crash"] = "test_crash"
    flag: str
    line: int

    def build(self):
        flag, line = Path(self.flag), self.line

        class Crash:
            name = "test_crash"

            def __call__(self, s: Sample) -> Sample:
                if flag.exists() and s.meta.get("line") == line:
                    raise RuntimeError("killed")
                return s

        return Crash()


def test_resume_skips_finished_shards_and_matches_an_uninterrupted_run(tmp_path):
    flag = tmp_path / "crash"
    flag.touch()
    recipe = ops(OPS[:2] + [{"op": "test_crash", "flag": str(flag), "line": 30}] + OPS[2:])
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="killed"):
        run(dataset(), recipe, out, RunOptions(shard_size=10))
    done = sorted(p.name for p in (out / ".work" / "00").glob("*.done"))
    assert done == ["000000.done", "000001.done"]  # lines 1-20 finished, line 30 is in shard 2
    flag.unlink()
    stats = run(dataset(), recipe, out, RunOptions(shard_size=10, resume=True))
    assert stats["shards_resumed"] == 2
    fresh = run(dataset(), recipe, tmp_path / "fresh", RunOptions(shard_size=10))
    assert (out / OUTPUT).read_bytes() == (tmp_path / "fresh" / OUTPUT).read_bytes()
    assert stats["removed"] == fresh["removed"]
    with pytest.raises(ConfigError, match="different recipe"):
        run(dataset(), recipe[:3], out, RunOptions(shard_size=10, resume=True))


@register
class _Sleep(OpConfig):
    """Test-only: slows every record down, so that a run can be killed in the middle."""

    op: Literal["test_sleep"] = "test_sleep"
    seconds: float

    def build(self):
        seconds = self.seconds

        class Sleep:
            name = "test_sleep"

            def __call__(self, s: Sample) -> Sample:
                time.sleep(seconds)
                return s

        return Sleep()


SLOW = OPS[:2] + [{"op": "test_sleep", "seconds": 0.01}] + OPS[2:]


def slow_run(out: str) -> dict:
    """The run the SIGKILL test starts in a child process and then finishes in this one."""
    return run(dataset() * 3, ops(SLOW), out, RunOptions(shard_size=10, resume=True))


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    out = tmp_path / "out"
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_pipeline as t; t.slow_run({str(out)!r})")
    child = subprocess.Popen([sys.executable, "-c", code])
    marker = out / ".work" / "00" / "000002.done"
    deadline = time.monotonic() + 60
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, "the child finished before it could be killed"
    finished = len(list((out / ".work" / "00").glob("*.done")))
    assert 3 <= finished < 15 and not (out / OUTPUT).exists()
    stats = slow_run(str(out))
    assert stats["shards_resumed"] == finished
    fresh = run(dataset() * 3, ops(SLOW), tmp_path / "fresh", RunOptions(shard_size=10))
    for name in (OUTPUT, REJECTS):
        assert (out / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()
    assert stats["removed"] == fresh["removed"]


def test_duplicate_operator_labels_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="appears twice"):
        run([], ops([{"op": "answer"}, {"op": "answer"}]), tmp_path)
    stats = run([], ops([{"op": "answer"}, {"op": "answer", "name": "answer2", "min_chars": 5}]), tmp_path)
    assert stats["records_in"] == stats["records_out"] == 0


@pytest.mark.parametrize("name", ["english-instructions", "chinese-instructions", "pretraining-text"])
def test_example_recipes_load(name):
    recipe = load_recipe(EXAMPLES / f"{name}.yaml")
    assert recipe.operators and recipe.inputs[0].path.name.endswith(("json", "jsonl"))


def test_recipe_keeps_the_language_code_no_a_string(tmp_path):
    """Norwegian's code `no` stays a string (YAML 1.1 would read it as false)."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("inputs: []\noutput: {dir: out}\noperators: [{op: language, keep: [en, no]}]\n")
    assert load_recipe(recipe).operators[0].keep == ["en", "no"]


def test_recipe_errors_name_the_key(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("inputs: []\noutput: {dir: out, rejcts: true}\noperators: []\n")
    with pytest.raises(ConfigError, match=r"output\.rejcts.*did you mean 'rejects'"):
        load_recipe(bad)
    bad.write_text("inputs: []\noutput: {dir: out}\noperators: [{op: length, unit: words}]\n")
    with pytest.raises(ConfigError, match=r"operators\[0\].*min"):
        load_recipe(bad)


def test_recipe_inputs_are_relative_to_the_recipe_and_a_missing_one_names_its_key(tmp_path, monkeypatch):
    from tuneforge.curate import curate

    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "d.jsonl").write_text('{"text": "hello world"}\n')
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.write_text("inputs: [{path: d.jsonl}, {path: missing.jsonl}]\noutput: {dir: out, report: false}\n"
                      "operators: []\n")
    monkeypatch.chdir(tmp_path)
    r = load_recipe("recipes/r.yaml")
    assert r.output.dir == Path("recipes/out")
    with pytest.raises(ConfigError, match=r"inputs\.1\.path: recipes/missing\.jsonl: no such file .*recipe file"):
        curate(r)
    assert not (tmp_path / "recipes" / "out").exists()  # checked before anything ran
