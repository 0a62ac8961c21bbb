"""`data generate`'s four modes against the stub teacher: exact counts by reason (in = kept + removed +
failed), provenance in meta, the files every mode writes, and a re-run that sends nothing again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datagen_helpers import read_jsonl, teacher

from tuneforge.datagen import generate, load_recipe, parse_recipe
from tuneforge.errors import ConfigError, DataError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "generate"


def run(raw: dict, base: Path) -> dict:
    return generate(parse_recipe(raw, base))


def identity(stats: dict) -> None:
    assert stats["in"] == stats["kept"] + sum(stats["removed"].values()) + stats["failed"]


def test_self_instruct_removes_near_copies_and_unusable_tasks_and_answers_the_rest(stub, seeds, tmp_path):
    raw = {"mode": "self_instruct", "teacher": teacher(stub.url), "output_dir": "out",
           "self_instruct": {"seeds": str(seeds), "num_examples": 2, "seeds_per_prompt": 3}}
    stats = run(raw, tmp_path)
    # 4 prompts x 5 listed tasks: prompt 0 adds a festival task and a planet task; the other prompts'
    # versions of them differ by one word (ROUGE-L >= 0.7), and every prompt's task 5 is a seed, verbatim
    assert stats["removed"] == {"near_copy": 10, "blocklisted": 4, "too_short": 4}
    assert (stats["in"], stats["kept"], stats["failed"], stats["prompts"]) == (20, 2, 0, 4)
    identity(stats)
    out = tmp_path / "out"
    records = read_jsonl(out / "data.jsonl")
    assert [r["id"] for r in records] == ["si-0-0", "si-0-4"]
    first = records[0]
    assert first["messages"][0]["content"].startswith("Explain how the ")
    assert first["messages"][1]["content"].startswith("Answer 0 to 'Explain how the")
    meta = first["meta"]
    assert meta["mode"] == "self_instruct" and meta["teacher"] == "teacher" and len(meta["seed_ids"]) == 3
    assert set(meta["seed_ids"]) <= {f"seed_task_{i}" for i in range(5)} and meta["sampling"]["temperature"] == 0.7
    rejects = read_jsonl(out / "rejects.jsonl")
    assert len(rejects) == 18 and {r["reason"] for r in rejects} == {"near_copy", "blocklisted", "too_short"}
    assert "ROUGE-L 1.00" in next(r["detail"] for r in rejects if r["id"] == "si-0-1")
    assert json.loads((out / "stats.json").read_text()) == stats
    assert "20 in = 2 kept + 18 removed + 0 failed" in (out / "report.html").read_text()
    sent = len(stub.received)
    again = run(raw, tmp_path)  # a re-run: every request from the cache, no record written twice
    assert len(stub.received) == sent and again["usage"]["cached"] == sent and again["usage"]["requests"] == 0
    assert read_jsonl(out / "data.jsonl") == records and len(read_jsonl(out / "rejects.jsonl")) == 18
    assert {k: again[k] for k in ("in", "kept", "removed")} == {k: stats[k] for k in ("in", "kept", "removed")}


def test_self_instruct_resumed_after_a_failed_prompt_keeps_what_it_wrote(stub, seeds, tmp_path):
    raw = {"mode": "self_instruct", "teacher": teacher(stub.url, concurrency=1, retries=0), "output_dir": "out",
           "self_instruct": {"seeds": str(seeds), "num_examples": 2}}
    stub.script = [("status", 500)]  # prompt 0 fails; prompt 1's festival and planet tasks are kept instead
    first = run(raw, tmp_path)
    assert (first["kept"], first["failed"], first["prompts"]) == (2, 1, 2)
    again = run(raw, tmp_path)  # prompt 0 now answers: its tasks come first, prompt 1's stay as written
    identity(again)
    data = read_jsonl(tmp_path / "out" / "data.jsonl")
    rejects = read_jsonl(tmp_path / "out" / "rejects.jsonl")
    assert sorted(r["id"] for r in data) == ["si-0-0", "si-0-4", "si-1-0", "si-1-4"]
    assert again["kept"] == 4 and again["failed"] == 0 and again["prompts"] == 2
    assert not {r["id"] for r in data} & {r["id"] for r in rejects}
    assert len(rejects) == sum(again["removed"].values())


def _prompts(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("extract", ["none", "json"])
def test_distill_keeps_the_best_of_n_by_a_json_schema_reward(stub, tmp_path, extract):
    prompts = _prompts(tmp_path, [f"Describe person {i} as JSON." for i in range(3)])
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    stats = run({"mode": "distill", "teacher": teacher(stub.url), "output_dir": "out",
                 "distill": {"prompts": str(prompts), "samples": 4, "select": "reward", "extract": extract,
                             "reward": {"name": "json_schema", "json_schema": schema}, "min_reward": 1.0}},
                tmp_path)
    # sample 1 is bare JSON, sample 3 JSON inside prose and a code fence, samples 0 and 2 prose
    if extract == "json":  # sample 3's JSON is taken out of its prose; samples 1 and 3 tie, the first is kept
        assert stats["removed"] == {"reply_not_json": 6, "not_best": 3}
    else:
        assert stats["removed"] == {"reply_not_json": 9}
    assert (stats["in"], stats["kept"]) == (12, 3)
    identity(stats)
    records = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert sorted(r["id"] for r in records) == ["p0-s1", "p1-s1", "p2-s1"]
    for r in records:
        assert json.loads(r["messages"][-1]["content"])["age"] == 1 and r["meta"]["scores"] == {"reward": 1.0}
    assert records[0]["meta"]["all_scores"] == ([0.0, 1.0, 0.0, 1.0] if extract == "json" else [0.0, 1.0, 0.0, 0.0])
    assert len(stub.received) == 3  # one request per prompt, n = 4
    not_json = [r for r in read_jsonl(tmp_path / "out" / "rejects.jsonl") if r["reason"] == "reply_not_json"]
    assert "json_schema needs JSON; the reply: name " in not_json[0]["detail"]


def test_distill_best_of_n_by_a_judge(stub, tmp_path):
    prompts = _prompts(tmp_path, ["Name a fruit.", "Name a colour.", "Something unjudgeable."])
    stats = run({"mode": "distill", "teacher": teacher(stub.url), "output_dir": "out",
                 "distill": {"prompts": str(prompts), "samples": 3, "select": "judge",
                             "judge": teacher(stub.url, model="judge", temperature=0.0)}}, tmp_path)
    assert stats["removed"] == {"not_best": 4, "judge_unparsable": 3} and stats["kept"] == 2
    identity(stats)
    for r in read_jsonl(tmp_path / "out" / "data.jsonl"):
        assert r["id"].endswith("-s2") and r["meta"]["scores"] == {"judge": 7.0}  # qualities 3, 5, 7


def test_preferences_from_two_models_ranked_by_a_judge(stub, tmp_path):
    prompts = _prompts(tmp_path, ["Name a river.", "Say sorry.", "Name a city."])
    stats = run({"mode": "preferences", "teacher": teacher(stub.url), "output_dir": "out",
                 "preferences": {"prompts": str(prompts), "candidates": 3, "second": teacher(stub.url, model="student"),
                                 "judge": teacher(stub.url, model="judge")}}, tmp_path)
    assert stats["removed"] == {"identical_candidates": 1} and (stats["in"], stats["kept"]) == (3, 2)
    identity(stats)
    pairs = read_jsonl(tmp_path / "out" / "data.jsonl")
    for pair in pairs:
        assert "quality 5" in pair["chosen"][0]["content"] and "quality 3" in pair["rejected"][0]["content"]
        assert pair["meta"]["scores"] == {"chosen": 5, "rejected": 3} and pair["meta"]["chosen_model"] == "teacher"
    assert stats["models"] == ["teacher", "student"]


def test_evolve_applies_the_elimination_rules(stub, tmp_path):
    data = tmp_path / "seeds.jsonl"
    data.write_text("".join(json.dumps({"instruction": t, "output": "x"}) + "\n" for t in [
        "Write a short poem about the sea.", "Please copy this sentence for me.", "Tell me you are sorry now."]))
    stats = run({"mode": "evolve", "teacher": teacher(stub.url), "output_dir": "out",
                 "evolve": {"seeds": str(data), "rounds": 2, "operations": ["constraints", "breadth"]}}, tmp_path)
    assert stats["removed"] == {"copied_prompt_words": 1, "teacher_cannot_answer": 1}
    assert (stats["in"], stats["kept"]) == (4, 2)  # the poem evolves twice; the others stop at round 1
    identity(stats)
    second = [r for r in read_jsonl(tmp_path / "out" / "data.jsonl") if r["meta"]["round"] == 2][0]
    assert second["messages"][0]["content"].startswith("Write a short poem about the sea. Answer in exactly")
    assert len(second["meta"]["operations"]) == 2 and second["meta"]["parent"].startswith("Write a short poem")


def test_a_failed_request_is_counted_and_asked_again_on_resume(stub, tmp_path):
    prompts = _prompts(tmp_path, ["One.", "Two.", "Three."])
    raw = {"mode": "distill", "teacher": teacher(stub.url, concurrency=1, retries=0), "output_dir": "out",
           "distill": {"prompts": str(prompts)}}
    stub.script = [("status", 500)]
    stats = run(raw, tmp_path)
    assert (stats["kept"], stats["failed"], stats["failed_by_reason"]) == (2, 1, {"HTTP 500": 1})
    identity(stats)
    assert [r["reason"] for r in read_jsonl(tmp_path / "out" / "rejects.jsonl")] == ["request_failed"]
    stats = run(raw, tmp_path)
    assert (stats["kept"], stats["failed"]) == (3, 0) and len(stub.received) == 4
    assert read_jsonl(tmp_path / "out" / "rejects.jsonl") == []
    assert len({r["id"] for r in read_jsonl(tmp_path / "out" / "data.jsonl")}) == 3


def test_an_empty_seed_file_and_bad_recipes_name_what_to_fix(stub, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    raw = {"mode": "self_instruct", "teacher": teacher(stub.url), "output_dir": "out",
           "self_instruct": {"seeds": "empty.jsonl"}}
    with pytest.raises(DataError, match=r"empty.jsonl: no records: the seeds file is empty"):
        run(raw, tmp_path)
    with pytest.raises(DataError, match=r"missing.jsonl: no such file \(seeds\)"):
        run({**raw, "self_instruct": {"seeds": "missing.jsonl"}}, tmp_path)
    with pytest.raises(ConfigError, match=r"unknown key 'self_instruct.num_exemples'; did you mean 'num_examples'\?"):
        parse_recipe({**raw, "self_instruct": {"seeds": "s", "num_exemples": 3}}, tmp_path)
    with pytest.raises(ConfigError, match="mode distill needs a `distill:` section"):
        parse_recipe({**raw, "mode": "distill"}, tmp_path)
    with pytest.raises(ConfigError, match="select: reward needs `reward:`"):
        parse_recipe({**raw, "mode": "distill", "self_instruct": None,
                      "distill": {"prompts": "p.txt", "select": "reward"}}, tmp_path)


@pytest.mark.parametrize("name", ["self_instruct", "evolve", "distill", "preferences"])
def test_every_example_recipe_loads(name):
    recipe = load_recipe(EXAMPLES / f"{name}.yaml")
    assert recipe.mode == name and recipe.teacher.url.startswith("http://127.0.0.1")
    source = getattr(recipe.settings, "seeds", None) or recipe.settings.prompts
    assert source.is_absolute() and recipe.output_dir.is_absolute()
    if name == "distill":
        assert source.exists() and recipe.distill and recipe.distill.reward and recipe.distill.samples == 4
        assert recipe.distill.reward[0].name == "json_schema" and recipe.distill.min_reward == 1.0
