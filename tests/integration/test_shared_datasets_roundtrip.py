"""Every file in ../shared/datasets converts to the canonical form and back with nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.io import read_samples, write_samples

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
if not SHARED.is_dir():
    pytest.skip(f"the reference datasets folder {SHARED} is absent (it sits beside the repository)",
                allow_module_level=True)

# file -> (its format, records, samples)
FILES = {
    "alpaca_en_demo.json": ("alpaca", 999, 999),
    "alpaca_zh_demo.json": ("alpaca", 1000, 1000),
    "identity.json": ("alpaca", 91, 91),
    "dpo_en_demo.json": ("sharegpt", 300, 300),
    "c4_demo.jsonl": ("text", 300, 300),
    "seed_tasks.jsonl": ("self_instruct", 175, 175),
}


def load(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def test_every_shared_file_is_covered():
    assert sorted(p.name for p in SHARED.iterdir() if p.suffix in (".json", ".jsonl")) == sorted(FILES)


@pytest.mark.parametrize("name", list(FILES))
def test_round_trip_through_canonical(tmp_path, name):
    fmt, n_records, n_samples = FILES[name]
    samples, report = read_samples(str(SHARED / name))
    assert (report.read, report.kept, report.samples, report.n_rejected) == (n_records, n_records, n_samples, 0)
    write_samples(samples, tmp_path / "canonical.jsonl")
    canonical, again = read_samples(str(tmp_path / "canonical.jsonl"))
    assert canonical == samples and again.read == n_samples
    out = tmp_path / ("back" + (".jsonl" if name.endswith(".jsonl") else ".json"))
    assert write_samples(canonical, out, to=fmt) == n_records
    assert load(out) == load(SHARED / name)
