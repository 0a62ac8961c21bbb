"""The review store: import, claims and leases, derived state, and the exact SFT / DPO / KTO records."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tuneforge.io import read_samples
from tuneforge.review import ReviewConflict, ReviewError, ReviewStore, export, import_samples, review_stats, store_path
from tuneforge.types import Message, Sample


def chat(prompt: str, reply: str, **meta: object) -> Sample:
    return Sample(messages=[Message("user", prompt), Message("assistant", reply)], meta=dict(meta))


def pref(prompt: str, chosen: str, rejected: str) -> Sample:
    return Sample(messages=[Message("user", prompt)], chosen=[Message("assistant", chosen)],
                  rejected=[Message("assistant", rejected)])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    with ReviewStore.open(tmp_path) as s:
        yield s


def test_store_lives_in_the_project_directory_in_wal_mode(tmp_path):
    with ReviewStore.open(tmp_path) as s:
        assert s.path == store_path(tmp_path) == tmp_path / ".tuneforge" / "review.db"
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_import_gathers_replies_per_prompt_and_counts_every_reply(store, tmp_path):
    teacher = [chat("capital of France?", "Paris.", mode="distill", teacher="big"), chat("2+2?", "4")]
    report = import_samples(store, teacher)
    assert (report.added, report.items_created) == (2, 2)
    finetune = [chat("capital of France?", "It is Paris."), chat("capital of France?", "Paris."),
                Sample(text="raw text"), Sample(messages=[Message("user", "no reply yet")])]
    report = import_samples(store, finetune, kind="adapter", name="my-lora")
    assert report.balanced and report.offered == 2 and report.added == 1
    assert dict(report.not_added) == {"duplicate": 1}
    assert dict(report.unusable) == {"text_only": 1, "no_reply": 1}
    item = store.item(1)
    assert [c.text for c in item.candidates] == ["Paris.", "It is Paris."]
    assert item.candidates[0].source["kind"] == "generate"  # provenance in meta says it was generated
    assert item.candidates[0].source["meta"] == {"mode": "distill", "teacher": "big"}
    assert item.candidates[0].source["name"] == "big"  # the teacher that wrote it
    assert item.candidates[1].source == {"kind": "adapter", "name": "my-lora"}
    with pytest.raises(ReviewError, match="source kind"):
        import_samples(store, teacher, kind="teacher")


def test_import_names_each_preference_reply_by_the_model_that_wrote_it(store):
    pair = pref("q", "good", "bad")
    pair.meta = {"mode": "preferences", "teacher": "big", "chosen_model": "big", "rejected_model": "small"}
    import_samples(store, [pair])
    sources = {c.source["label"]: (c.source["kind"], c.source["name"]) for c in store.item(1).candidates}
    assert sources == {"chosen": ("generate", "big"), "rejected": ("generate", "small")}


def test_import_caps_candidates_and_freezes_reviewed_items(store):
    import_samples(store, [chat("q", f"reply {i}") for i in range(6)])
    assert len(store.item(1).candidates) == 4
    store.choose(1, "ann", 0)
    report = import_samples(store, [chat("q", "reply 9")])
    assert dict(report.not_added) == {"already_reviewed": 1}
    report = import_samples(store, [chat("q", f"reply {i}") for i in range(4, 6)])
    assert dict(report.not_added) == {"already_reviewed": 2}


def test_import_reads_a_real_dataset_through_the_readers(store, shared_datasets):
    samples, _ = read_samples(str(shared_datasets / "dpo_en_demo.json"))
    samples = samples[:20]
    report = import_samples(store, samples)
    assert report.balanced and report.added == 40 and store.count() == 20
    labels = [[c.source["label"] for c in item.candidates] for item in store.items()]
    assert {tuple(x) for x in labels} == {("chosen", "rejected"), ("rejected", "chosen")}  # blind order
    first = store.item(1)
    assert first.candidates[0].source["file"].endswith("dpo_en_demo.json")


def test_leases_keep_two_reviewers_apart_and_expire(tmp_path):
    clock = Clock()
    a, b = ReviewStore(store_path(tmp_path), clock=clock), ReviewStore(store_path(tmp_path), clock=clock)
    import_samples(a, [chat(f"q{i}", "r") for i in range(3)])
    ann = a.next_item("ann", lease_s=60)
    assert ann is not None and a.next_item("ann", lease_s=60).id == ann.id  # the item she holds, again
    bob = b.next_item("bob", lease_s=600)
    assert bob is not None and bob.id != ann.id
    with pytest.raises(ReviewConflict, match="being reviewed by ann"):
        b.choose(ann.id, "bob", 0)
    clock.now += 61  # ann walked away: her item goes back to the pool
    assert b.next_item("bob").id == bob.id  # bob still holds his
    b.done(bob.id, "bob")
    assert b.next_item("bob").id == ann.id
    with pytest.raises(ReviewConflict, match="bob"):
        a.thumb(ann.id, "ann", 0, True)
    a.close()
    b.close()


def test_acting_on_an_item_by_id_claims_it(store):
    import_samples(store, [chat("q1", "r"), chat("q2", "r")])
    store.edit(2, "bob", 0, "better")  # a page that opened item 2 directly
    assert store.holder(2) == "bob"
    with pytest.raises(ReviewConflict):
        store.choose(2, "ann", 0)
    assert store.next_item("ann").id == 1 and store.next_item("bob").id == 2
    store.done(2, "bob")
    assert store.holder(2) is None


def test_skip_passes_an_item_to_the_others(store):
    import_samples(store, [chat("q1", "r"), chat("q2", "r")])
    first = store.next_item("ann")
    store.skip(first.id, "ann")
    assert store.next_item("ann").id != first.id
    assert store.next_item("bob").id == first.id


def test_bad_actions_are_refused_with_a_clear_error(store):
    import_samples(store, [chat("q", "r")])
    with pytest.raises(ReviewError, match="from 1 to 1, got 2"):
        store.choose(1, "ann", 1)
    with pytest.raises(ReviewError, match="no review item 7"):
        store.note(7, "ann", "x")
    with pytest.raises(ReviewError, match="reviewer name"):
        store.next_item(" ")


def test_events_are_append_only(store):
    import_samples(store, [chat("q", "r")])
    store.note(1, "ann", "hello")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.execute("UPDATE events SET value = '\"x\"'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.execute("DELETE FROM events")


@pytest.fixture
def reviewed(store):
    """Items reviewed in different ways; the fifth left alone and the sixth only skipped."""
    import_samples(store, [chat("q1", "a1"), chat("q1", "b1"),      # 1: edit b, then choose b
                           chat("q2", "a2"), chat("q2", "b2"),      # 2: choose a, no edits
                           chat("q3", "a3"),                        # 3: edit only, thumbs down first
                           pref("q4", "good", "bad"),               # 4: thumbs on both
                           chat("q5", "a5"), chat("q6", "a6"), chat("q7", "a7")])
    store.edit(1, "ann", 1, "b1 fixed")
    store.edit(1, "ann", 1, "b1 fixed twice")  # the latest edit wins
    store.choose(1, "ann", 1)
    store.note(1, "ann", "b was close")
    store.done(1, "ann")
    store.choose(2, "bob", 1)
    store.choose(2, "bob", 0)  # changed his mind
    store.thumb(3, "bob", 0, False)
    store.edit(3, "bob", 0, "a3 fixed")
    four = store.item(4)
    good = next(c.index for c in four.candidates if c.text == "good")
    store.thumb(4, "ann", good, True)
    store.thumb(4, "ann", 1 - good, False)
    store.skip(6, "ann")
    store.edit(7, "bob", 0, "a7 fixed")  # 7: one candidate, edited and chosen
    store.choose(7, "bob", 0)
    return store


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _turns(messages):
    return [(m["role"], m["content"]) for m in messages]


def test_export_sft_holds_the_edited_replies(reviewed, tmp_path):
    report = export(reviewed, "sft", tmp_path / "sft.jsonl")
    records = _read(tmp_path / "sft.jsonl")
    assert [_turns(r["messages"]) for r in records] == [
        [("user", "q1"), ("assistant", "b1 fixed twice")], [("user", "q3"), ("assistant", "a3 fixed")],
        [("user", "q7"), ("assistant", "a7 fixed")]]
    assert records[0]["meta"]["review"]["notes"] == ["b was close"]
    assert (report.items, report.items_exported, report.records) == (7, 3, 3) and report.balanced
    assert dict(report.not_exported) == {"no_edit": 2, "not_reviewed": 1, "skipped": 1}
    assert read_samples(str(tmp_path / "sft.jsonl"))[0][0].messages[1].content == "b1 fixed twice"


def test_export_dpo_holds_choices_and_edits_over_originals(reviewed, tmp_path):
    report = export(reviewed, "dpo", tmp_path / "dpo.jsonl")
    records = _read(tmp_path / "dpo.jsonl")
    pairs = [(r["messages"][0]["content"], r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in records]
    assert pairs == [("q1", "b1 fixed twice", "a1"), ("q2", "a2", "b2"), ("q3", "a3 fixed", "a3"),
                     ("q7", "a7 fixed", "a7")]  # one candidate: its edit over the original
    assert records[1]["meta"]["review"]["reviewers"] == ["bob"]
    assert dict(report.not_exported) == {"no_choice": 1, "not_reviewed": 1, "skipped": 1} and report.balanced
    samples, _ = read_samples(str(tmp_path / "dpo.jsonl"))
    assert all(s.kind == "preference" for s in samples)


def test_export_kto_holds_thumbs_with_a_boolean_label(reviewed, tmp_path):
    report = export(reviewed, "kto", tmp_path / "kto.jsonl")
    records = _read(tmp_path / "kto.jsonl")
    got = sorted((_turns(r["messages"])[-1][1], r["label"]) for r in records)
    # item 3 was thumbed down before its edit: the label judges the original text
    assert got == [("a3", False), ("bad", False), ("good", True)]
    assert all(isinstance(r["label"], bool) for r in records)
    assert (report.items_exported, report.records) == (2, 3) and report.balanced
    assert dict(report.not_exported) == {"no_thumbs": 3, "not_reviewed": 1, "skipped": 1}


def test_stats_count_items_and_actions(reviewed):
    s = review_stats(reviewed)
    assert (s.items, s.candidates) == (7, 10)
    assert dict(s.status) == {"done": 1, "in_review": 4, "started": 1, "open": 1}  # 6 was skipped: released
    assert s.by_reviewer["bob"]["choose"] == 3 and s.by_reviewer["ann"]["edit"] == 2
    assert dict(s.exportable) == {"sft": 3, "dpo": 4, "kto": 2}
