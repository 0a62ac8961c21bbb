"""`tuneforge review import | next | export | stats`, driven without a terminal: keys on stdin and
`$EDITOR` set to a small script."""

from __future__ import annotations

import json
import stat
import sys

from typer.testing import CliRunner

from tuneforge.cli import app
from tuneforge.review import ReviewStore, store_path

runner = CliRunner()


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def said(result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def _chat(prompt, reply, **meta):
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}],
            **({"meta": meta} if meta else {})}


def test_review_next_in_the_terminal_then_export(tmp_path, monkeypatch):
    teacher = _write(tmp_path / "teacher.jsonl", [_chat("Name a colour.", "Blue.", mode="distill"),
                                                  _chat("Say hi.", "Hello!"), _chat("Count to 3.", "1 2 3")])
    student = _write(tmp_path / "student.jsonl", [_chat("Name a colour.", "A colour: red.")])
    project = tmp_path / "proj"
    r = runner.invoke(app, ["review", "import", str(teacher), "--project", str(project)])
    assert r.exit_code == 0, r.output
    assert "3 of 3 replies added (3 new items)" in said(r)
    r = runner.invoke(app, ["review", "import", str(student), "-p", str(project), "--kind", "adapter",
                            "--name", "my-lora"])
    assert "1 of 1 replies added (0 new items)" in said(r)

    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "Hello there, how can I help?" > "$1"\n')
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.setenv("VISUAL", str(editor))
    # item 1: two candidates, note then choose the 2nd; item 2: edit, then thumbs up (its only candidate:
    # done); item 3: quit (given back, untouched)
    keys = "n\nshorter please\nx\n2\ne\n+\nq\n"
    r = runner.invoke(app, ["review", "next", "-p", str(project), "--reviewer", "ann"], input=keys)
    assert r.exit_code == 0, r.output
    assert "A colour: red." in said(r) and "adapter my-lora" in said(r)  # candidates with their source
    assert "2 items reviewed by ann." in said(r)
    with ReviewStore.open(project) as store:
        one, two, three = store.items()
        assert one.state.choice == 1 and one.state.notes == [("ann", "shorter please")] and one.state.done
        assert two.state.edits == {0: "Hello there, how can I help?"} and two.state.thumbs == {0: True}
        assert not three.events and store.holder(three.id) is None  # quitting gives the item back

    r = runner.invoke(app, ["review", "export", "--as", "dpo", "-o", str(tmp_path / "dpo.jsonl"), "-p", str(project)])
    assert r.exit_code == 0, r.output
    assert "2 dpo records from 2 of 3 items" in said(r) and "not_reviewed" in said(r)
    pairs = [json.loads(line) for line in (tmp_path / "dpo.jsonl").read_text().splitlines()]
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [
        ("A colour: red.", "Blue."), ("Hello there, how can I help?", "Hello!")]
    r = runner.invoke(app, ["review", "export", "--as", "kto", "-o", str(tmp_path / "kto.jsonl"), "-p", str(project)])
    kto = [json.loads(line) for line in (tmp_path / "kto.jsonl").read_text().splitlines()]
    assert [(k["messages"][-1]["content"], k["label"]) for k in kto] == [("Hello there, how can I help?", True)]

    r = runner.invoke(app, ["review", "stats", "-p", str(project), "--json"])
    stats = json.loads(r.output)
    assert stats["status"] == {"done": 2, "open": 1}
    assert stats["by_reviewer"]["ann"] == {"note": 1, "choose": 1, "done": 2, "edit": 1, "thumb": 1}


def test_review_export_rejects_an_unknown_kind(tmp_path):
    r = runner.invoke(app, ["review", "export", "--as", "rlhf", "-o", str(tmp_path / "x.jsonl")])
    assert r.exit_code != 0 and "rlhf" in said(r)


def test_review_import_of_an_output_folder_reads_its_data_only(tmp_path):
    out = tmp_path / "generated"
    out.mkdir()
    _write(out / "data.jsonl", [_chat("Say hi.", "Hello!", mode="distill", teacher="big")])
    _write(out / "rejects.jsonl", [{"reason": "reply_not_json", "record": {"reply": "x"}}])
    (out / "stats.json").write_text('{"kept": 1}')
    r = runner.invoke(app, ["review", "import", str(out), "-p", str(tmp_path / "proj")])
    assert r.exit_code == 0, r.output
    assert "1 records, 1 of 1 replies added (1 new items)" in said(r)
    with ReviewStore.open(tmp_path / "proj") as store:
        assert store.item(1).candidates[0].source["name"] == "big"


def test_review_next_moves_on_when_another_reviewer_took_the_item(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    data = _write(tmp_path / "d.jsonl", [_chat("q1", "r1"), _chat("q2", "r2")])
    runner.invoke(app, ["review", "import", str(data), "-p", str(project)])
    # the editor stands in for time passing: ann's claim runs out while she edits, and bob takes the item
    editor = tmp_path / "editor.py"
    editor.write_text(f"#!{sys.executable}\nimport sqlite3, sys\nopen(sys.argv[1], 'w').write('late edit')\n"
                      f"db = sqlite3.connect({str(store_path(project))!r})\n"
                      "db.execute(\"UPDATE leases SET reviewer = 'bob' WHERE item_id = 1\")\ndb.commit()\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.setenv("VISUAL", str(editor))
    r = runner.invoke(app, ["review", "next", "-p", str(project), "--reviewer", "ann"], input="e\n+\n")
    assert r.exit_code == 0, r.output
    assert "item 1 is being reviewed by bob" in said(r) and "1 item reviewed by ann." in said(r)
    with ReviewStore.open(project) as store:
        assert not store.item(1).events  # the late edit was refused, not recorded over bob's claim
        assert store.item(2).state.thumbs == {0: True}
