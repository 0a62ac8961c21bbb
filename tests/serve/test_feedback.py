"""Recording and feedback on a tiny model: `create_app(recorder=...)` stores every chat completion under
its id (streamed ones with their whole text), `POST /v1/feedback` rates them behind the API key with
OpenAI-style errors, and `export_feedback` / `tuneforge data from-feedback` turn the ratings into KTO,
DPO and SFT records whose counts add up."""

from __future__ import annotations

import json
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.serve.conftest import running_server
from typer.testing import CliRunner

from tuneforge.errors import TuneforgeError
from tuneforge.serve.record import DB_NAME, Recorder, export_feedback

openai = pytest.importorskip("openai", reason="the serve extra is needed: pip install 'tuneforge[serve]'")
httpx = pytest.importorskip("httpx", reason="the serve extra is needed: pip install 'tuneforge[serve]'")

KEY = "sk-feedback-test-4242"
AUTH = {"Authorization": f"Bearer {KEY}"}
ASK = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
       "temperature": 0, "max_tokens": 6}


def chat(url: str, **kw):
    c = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)
    return c.chat.completions.create(model="tiny", **{**ASK, **kw})


def rate(url: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v1/feedback", json=body, headers=AUTH if headers is None else headers, timeout=30)


def rows(directory, table: str) -> list[sqlite3.Row]:
    with sqlite3.connect(directory / DB_NAME) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(f"SELECT * FROM {table}").fetchall()


@pytest.fixture(scope="module")
def recording(tiny_dir, tmp_path_factory):
    """One recording server for the module: (url, record dir)."""
    from tuneforge.serve.engine import load_engine

    directory = tmp_path_factory.mktemp("record")
    engine = load_engine(str(tiny_dir), model_id="tiny")
    try:
        with running_server(engine, api_key=KEY, recorder=Recorder(directory)) as (url, _):
            yield url, directory
    finally:
        engine.close(drain=False)


def test_chats_streamed_or_not_are_recorded_whole_and_feedback_exports_to_kto_dpo_and_sft(recording, tmp_path):
    url, directory = recording
    plain = chat(url, seed=7)
    chunks = list(chat(url, stream=True))
    streamed_id, streamed_text = chunks[0].id, "".join(c.choices[0].delta.content or "" for c in chunks)
    assert {c.id for c in chunks} == {streamed_id} and len(chunks) > 3 and streamed_text

    stored = {r["id"]: r for r in rows(directory, "exchanges")}
    assert plain.id in stored and streamed_id in stored
    replies = json.loads(stored[plain.id]["replies"])
    assert replies == [{"content": plain.choices[0].message.content, "finish_reason": plain.choices[0].finish_reason}]
    assert stored[plain.id]["model"] == "tiny" and not stored[plain.id]["stream"]
    params = json.loads(stored[plain.id]["params"])
    assert {"temperature": 0, "max_tokens": 6, "seed": 7, "n": 1}.items() <= params.items()
    assert json.loads(stored[plain.id]["messages"]) == ASK["messages"]
    assert stored[streamed_id]["stream"] == 1
    assert json.loads(stored[streamed_id]["replies"])[0]["content"] == streamed_text
    assert KEY not in (directory / DB_NAME).read_bytes().decode("utf-8", "replace")

    # Several feedbacks for one reply: all kept, the latest wins on export.
    assert rate(url, {"id": plain.id, "rating": "down"}).status_code == 200
    ok = rate(url, {"id": plain.id, "rating": "up"})
    assert ok.status_code == 200 and ok.json()["completion_id"] == plain.id
    assert rate(url, {"id": streamed_id, "rating": "down", "correction": "Blue."}).status_code == 200
    assert len([f for f in rows(directory, "feedback") if f["exchange_id"] == plain.id]) == 2

    recorded = len(rows(directory, "exchanges"))  # other tests of this module may have chatted too
    kto = export_feedback(directory, "kto", tmp_path / "kto.jsonl")
    records = [json.loads(line) for line in (tmp_path / "kto.jsonl").read_text().splitlines()]
    by_id = {r["meta"]["completion_id"]: r for r in records}
    assert by_id[plain.id]["label"] is True and by_id[streamed_id]["label"] is False
    assert by_id[plain.id]["messages"] == [*ASK["messages"],
                                           {"role": "assistant", "content": plain.choices[0].message.content}]
    assert kto.superseded >= 1 and kto.written == len(records) >= 2
    assert kto.replies == recorded == kto.written + sum(kto.skipped.values())

    dpo = export_feedback(directory, "dpo", tmp_path / "dpo.jsonl")
    pair = next(json.loads(line) for line in (tmp_path / "dpo.jsonl").read_text().splitlines()
                if json.loads(line)["meta"]["completion_id"] == streamed_id)
    assert pair["messages"] == ASK["messages"]
    assert pair["chosen"] == [{"role": "assistant", "content": "Blue."}]
    assert pair["rejected"] == [{"role": "assistant", "content": streamed_text}]
    assert dpo.skipped["no_correction"] >= 1 and dpo.replies == dpo.written + sum(dpo.skipped.values())

    sft = export_feedback(directory, "sft", tmp_path / "sft.jsonl")
    conversation = json.loads((tmp_path / "sft.jsonl").read_text().splitlines()[0])
    assert conversation["messages"][-1] == {"role": "assistant", "content": "Blue."}
    assert sft.written == dpo.written


def test_concurrent_chats_are_all_recorded(recording):
    url, directory = recording

    def one(i: int) -> str:
        if i % 2:  # streamed: read to the end, as a client that wants the whole reply does
            return list(chat(url, stream=True, max_tokens=3, seed=i))[0].id
        return chat(url, max_tokens=3, seed=i).id

    with ThreadPoolExecutor(6) as pool:
        ids = list(pool.map(one, range(6)))
    stored = {r["id"] for r in rows(directory, "exchanges")}
    assert len(set(ids)) == 6 and set(ids) <= stored


def test_feedback_for_an_unknown_id_is_a_404_with_an_openai_error_body(recording):
    url, _ = recording
    r = rate(url, {"id": "chatcmpl-nope", "rating": "up"})
    assert r.status_code == 404
    assert r.json() == {"error": {"message": "id: no recorded chat completion has the id 'chatcmpl-nope'",
                                  "type": "not_found_error", "param": "id", "code": "completion_not_found"}}


@pytest.mark.parametrize("body, status, param", [
    ({"rating": "up"}, 422, "id"),
    ({"id": "x"}, 422, "rating"),
    ({"id": "x", "rating": "meh"}, 422, "rating"),
    ({"id": "x", "rating": "down", "corection": "typo'd key"}, 422, "corection"),
    ({"id": "x", "rating": "down", "correction": ""}, 422, "correction"),
    ({"id": "", "rating": "up"}, 422, "id"),
    ({"id": "x", "rating": "up", "index": -1}, 422, "index"),
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
])
def test_bad_feedback_bodies_get_4xx_naming_the_field(recording, body, status, param):
    url, _ = recording
    if isinstance(body, bytes):
        r = httpx.post(f"{url}/v1/feedback", content=body, headers={**AUTH, "Content-Type": "application/json"})
    else:
        r = rate(url, body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"


def test_an_index_beyond_the_completions_choices_is_a_422(recording):
    url, _ = recording
    reply = chat(url, max_tokens=2)
    r = rate(url, {"id": reply.id, "rating": "up", "index": 1})
    assert r.status_code == 422 and r.json()["error"]["param"] == "index"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_feedback_needs_the_api_key(recording, headers):
    url, directory = recording
    reply = chat(url, max_tokens=2)
    before = len(rows(directory, "feedback"))
    r = rate(url, {"id": reply.id, "rating": "up"}, headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert len(rows(directory, "feedback")) == before


def test_without_recording_nothing_is_written_and_feedback_says_to_record(make_engine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with running_server(make_engine()) as (url, _):
        c = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        reply = c.chat.completions.create(model="tiny", **{**ASK, "max_tokens": 3})
        r = httpx.post(f"{url}/v1/feedback", json={"id": reply.id, "rating": "up"}, timeout=30)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "recording_off" and "--record" in r.json()["error"]["message"]
    assert list(tmp_path.iterdir()) == []


def test_from_feedback_cli_prints_counts_that_add_up(tmp_path):
    recorder = Recorder(tmp_path / "rec")
    from tuneforge.serve.record import Exchange

    prompt = [{"role": "user", "content": "2+2?"}]
    for i, reply in enumerate(["4", "5", "four"]):
        recorder.record(Exchange(f"chatcmpl-{i}", "tiny", prompt, None, {"temperature": 0},
                                 [{"content": reply, "finish_reason": "stop"}], stream=False))
    recorder.add_feedback("chatcmpl-0", "up")
    recorder.add_feedback("chatcmpl-1", "down", correction="4")
    recorder.close()
    from tuneforge.cli import app

    out = tmp_path / "pairs.jsonl"
    result = CliRunner().invoke(app, ["data", "from-feedback", str(tmp_path / "rec"), "--as", "dpo", "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = " ".join(re.sub(r"[\u2500-\u257f]", " ", result.output).split())  # without the table's borders
    assert "recorded replies 3" in lines and "written 1" in lines
    assert "skipped 1 no_feedback" in lines and "skipped 1 no_correction" in lines
    assert json.loads(out.read_text())["chosen"][0]["content"] == "4"


def test_exporting_needs_a_recording_and_kto_writes_json_lines(tmp_path):
    with pytest.raises(TuneforgeError, match="no recorded traffic"):
        export_feedback(tmp_path, "dpo", tmp_path / "x.jsonl")
    Recorder(tmp_path).close()
    with pytest.raises(TuneforgeError, match=r"\.jsonl"):
        export_feedback(tmp_path, "kto", tmp_path / "x.parquet")


def test_a_reply_that_made_tool_calls_is_exported_with_its_calls(tmp_path):
    from tuneforge.serve.record import Exchange

    recorder = Recorder(tmp_path)
    call = {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": '{"city": "Oslo"}'}}
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    recorder.record(Exchange("chatcmpl-t", "tiny", [{"role": "user", "content": "Time in Oslo?"}], tools, {},
                             [{"content": None, "tool_calls": [call], "finish_reason": "tool_calls"}], stream=True))
    recorder.add_feedback("chatcmpl-t", "down", correction="I cannot tell the time.")
    recorder.close()
    report = export_feedback(tmp_path, "dpo", tmp_path / "pairs.jsonl")
    pair = json.loads((tmp_path / "pairs.jsonl").read_text())
    assert report.written == 1 and pair["tools"] == tools
    assert pair["rejected"] == [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": {"city": "Oslo"}}}]}]


def test_a_completion_that_cannot_be_stored_is_still_answered_and_logged(make_engine, tmp_path, caplog):
    recorder = Recorder(tmp_path)

    def full_disk(exchange):
        raise sqlite3.OperationalError("database or disk is full")

    recorder.record = full_disk  # type: ignore[method-assign]
    with running_server(make_engine(), recorder=recorder) as (url, _):
        c = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        reply = c.chat.completions.create(model="tiny", **{**ASK, "max_tokens": 3})
    assert reply.choices[0].message.content
    assert f"could not record the chat completion {reply.id}" in caplog.text
