"""Curating raw files with bad lines: `inputs[].on_error: skip` counts them (in = kept + removed +
rejected), writes them to read_rejects.jsonl with file and line, and a resumed run still matches a
fresh one byte for byte; `raise` stops at the first one with file:line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest

from tuneforge.curate import OUTPUT, READ_REJECTS, REJECTS, REPORT, STATS, OpConfig, curate, parse_recipe, register
from tuneforge.errors import DataError
from tuneforge.types import Sample

BAD = {7: b'{"instruction": "Q7", "output": }', 19: b"[" * 50_000, 31: b'{"instruction": "no answer"}'}
REASONS = {"malformed JSON": 1, "nested too deeply": 1, "missing required field 'output'": 1}


def raw_file(path: Path) -> Path:
    """40 lines of alpaca records: three bad ones, a duplicate, an empty answer."""
    lines = []
    for n in range(1, 41):
        record = {"instruction": f"Question {n}?", "input": "", "output": f"Answer number {n}."}
        if n == 12:
            record["output"] = " "
        if n == 25:
            record = {"instruction": "Question 3?", "input": "", "output": "Answer number 3."}
        lines.append(BAD.get(n, json.dumps(record).encode()))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def recipe(tmp_path: Path, on_error: str | None, out: str = "out", extra_ops: list | None = None):
    raw_file(tmp_path / "raw.jsonl")
    spec = {"path": "raw.jsonl", "format": "alpaca", **({"on_error": on_error} if on_error else {})}
    return parse_recipe({"inputs": [spec], "output": {"dir": out},
                         "executor": {"shard_size": 5, "workers": 1},
                         "operators": [{"op": "answer"}, *(extra_ops or []), {"op": "exact_dedup"}]}, tmp_path)


def test_skip_counts_bad_lines_and_the_identity_holds(tmp_path):
    stats = curate(recipe(tmp_path, "skip"))
    out = tmp_path / "out"
    assert stats == json.loads((out / STATS).read_text())
    assert stats["rejected"] == REASONS
    assert stats["removed"] == {"answer/empty_answer": 1, "exact_dedup/exact_duplicate": 1}
    removed, rejected = sum(stats["removed"].values()), sum(stats["rejected"].values())
    assert stats["records_in"] == 40 == stats["records_out"] + removed + rejected
    assert stats["rejected_first_at"]["nested too deeply"] == f"{tmp_path / 'raw.jsonl'}:19"
    rejects = [json.loads(line) for line in (out / READ_REJECTS).read_text().splitlines()]
    assert [(r["source"], r["line"]) for r in rejects] == [(str(tmp_path / "raw.jsonl"), n) for n in BAD]
    assert rejects[2]["record"] == {"instruction": "no answer"}
    assert len((out / OUTPUT).read_text().splitlines()) == 35 and len((out / REJECTS).read_text().splitlines()) == 2
    assert "40 in = 35 kept + 2 removed + 3 rejected by the readers" in (out / REPORT).read_text()


def test_a_clean_rerun_leaves_no_earlier_read_rejects(tmp_path):
    r = recipe(tmp_path, "skip")
    curate(r)
    out = tmp_path / "out"
    (out / f".{READ_REJECTS}.partial").write_text("left by a killed run\n")
    (tmp_path / "raw.jsonl").write_bytes(b"".join(line + b"\n" for line in (tmp_path / "raw.jsonl").read_bytes()
                                                  .splitlines() if line.startswith(b'{"instruction": "Question')))
    stats = curate(r, resume=False)
    assert stats["rejected"] == {} and stats["records_in"] == 37
    assert not (out / READ_REJECTS).exists() and not list(out.glob(".*partial"))


def test_raise_stops_at_the_first_bad_line_naming_it(tmp_path):
    for on_error in (None, "raise"):
        with pytest.raises(DataError, match=rf"^{tmp_path / 'raw.jsonl'}:7: malformed JSON"):
            curate(recipe(tmp_path, on_error))
        assert not (tmp_path / "out" / OUTPUT).exists() and not (tmp_path / "out" / STATS).exists()


@register
class _StopOnce(OpConfig):
    """Test-only: raises on one record while a flag file exists, like a run killed mid-way."""

    op: Literal["test_stop_once"] = "test_stop_once"
    flag: str
    line: int

    def build(self):
        flag, line = Path(self.flag), self.line

        class Stop:
            name = "test_stop_once"

            def __call__(self, s: Sample) -> Sample:
                if flag.exists() and s.meta.get("line") == line:
                    raise RuntimeError("stopped")
                return s

        return Stop()


def test_resume_with_skip_matches_an_uninterrupted_run(tmp_path):
    flag = tmp_path / "stop"
    flag.touch()
    stop = [{"op": "test_stop_once", "flag": str(flag), "line": 33}]
    with pytest.raises(RuntimeError, match="stopped"):
        curate(recipe(tmp_path, "skip", extra_ops=stop))
    out = tmp_path / "out"
    assert not (out / READ_REJECTS).exists() and not list(out.glob(".*partial"))  # nothing looks complete
    flag.unlink()
    resumed = curate(recipe(tmp_path, "skip", extra_ops=stop))
    assert resumed["shards_resumed"] == 5  # 29 good records before line 33: five shards of 5 were done
    fresh = curate(recipe(tmp_path, "skip", out="fresh", extra_ops=stop))
    for name in (OUTPUT, REJECTS, READ_REJECTS):
        assert (out / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()
    for key in ("records_in", "records_out", "removed", "rejected"):
        assert resumed[key] == fresh[key]
