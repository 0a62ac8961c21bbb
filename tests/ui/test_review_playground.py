"""Review and Playground pages in the browser, on the project's review store: four items reviewed
(edit, choose, thumbs, skip) and exported as DPO pairs; the base and a LoRA adapter streaming side by
side, with thumbs and a better answer landing in the same store."""

from __future__ import annotations

import json

import pytest
from tests.ui.conftest import running_ui

from tuneforge.review import ReviewStore
from tuneforge.types import Message, Sample

PAIRS = [("Capital of France?", "Paris.", "Lyon."), ("2+2?", "4", "5"),
         ("Colour of the sky?", "Blue.", "Green."), ("Largest ocean?", "Pacific.", "Atlantic.")]


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_model_dir):
    from tuneforge.config import build_config
    from tuneforge.train.run import run_training

    root = tmp_path_factory.mktemp("root")
    (root / "data").mkdir()
    (root / "data" / "pairs.jsonl").write_text("".join(
        json.dumps(Sample(messages=[Message("user", q)], chosen=[Message("assistant", a)],
                          rejected=[Message("assistant", b)]).to_dict()) + "\n" for q, a, b in PAIRS))
    chat = root / "data" / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": "Hello there."}]}) + "\n")
    run_training(build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": str(chat),
                               "method": {"name": "lora", "r": 4},
                               "train": {"output_dir": str(root / "runs" / "alpha"), "max_steps": 2,
                                         "batch_size": 1, "packing": False}}))
    with running_ui(root, str(tiny_model_dir)) as ui:
        yield ui


def test_review_four_items_and_export_dpo(page, ui):
    page.open("review")
    page.page.fill("#reviewer", "alice")
    page.page.fill("#import-path", "data/pairs.jsonl")
    page.page.click("#import")
    page.page.locator("#review-result", has_text="imported 8 replies from 4 samples (4 new items)").wait_for()
    page.page.locator("#review-item h3", has_text="Item 1").wait_for()
    assert "0 of 4 items done" in page.page.inner_text("#review-progress")
    page.snap("review")

    # 1: edit the first reply (the import shows a pair's replies in a blind order, so read them here)
    texts = lambda: page.page.locator(".candidate-text").evaluate_all("ts => ts.map(t => t.value)")  # noqa: E731
    original = texts()[0]
    page.page.locator("[data-candidate='0'] textarea").fill("Paris, on the Seine.")
    page.page.click("[data-candidate='0'] .save-edit")
    page.page.locator("[data-candidate='0'] .badge", has_text="edited").wait_for()
    page.page.click("#done")
    # 2: choose the second reply, with the keyboard
    page.page.locator("#review-item h3", has_text="Item 2").wait_for()
    second = texts()
    page.page.locator("#review-item h3").click()
    page.page.keyboard.press("2")
    page.page.locator("[data-candidate='1'].chosen").wait_for()
    page.page.click("#done")
    # 3: thumbs up on the first reply
    page.page.locator("#review-item h3", has_text="Item 3").wait_for()
    page.page.click("[data-candidate='0'] button.up")
    page.page.locator("[data-candidate='0'] span.thumb", has_text="good").wait_for()
    page.page.click("#done")
    # 4: skip
    page.page.locator("#review-item h3", has_text="Item 4").wait_for()
    page.page.click("#skip")
    page.page.locator("text=Nothing left to review.").wait_for()
    assert "3 of 4 items done" in page.page.inner_text("#review-progress")

    page.page.select_option("#export-kind", "dpo")
    page.page.fill("#export-path", "review/prefs.jsonl")
    page.page.click("#export")
    page.page.locator("#review-result", has_text="wrote 2 dpo records from 2 of 4 items").wait_for()
    assert "1 no_choice" in page.page.inner_text("#review-result")
    assert "1 skipped" in page.page.inner_text("#review-result")
    page.snap("review-exported")
    lines = (ui.root / "review" / "prefs.jsonl").read_text().splitlines()
    pairs = [Sample.from_dict(json.loads(line)) for line in lines]
    assert [(s.messages[0].content, s.chosen[0].content, s.rejected[0].content) for s in pairs] == [
        ("Capital of France?", "Paris, on the Seine.", original),  # the edit over the original
        ("2+2?", second[1], second[0]),  # the chosen reply over the other
    ]


def test_review_adds_candidates_on_the_spot(page, ui, tiny_model_dir):
    """A reply written now by a trained run, and one by an OpenAI-compatible endpoint (tuneforge serve on
    the tiny model), join the item under review as candidates naming their source."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from tests.serve.conftest import running_server

    from tuneforge.serve.engine import load_engine

    (ui.root / "data" / "ask.jsonl").write_text(json.dumps(
        {"messages": [{"role": "user", "content": "Tell me a joke."}, {"role": "assistant", "content": "No."}]}) + "\n")
    page.open("review")
    page.page.fill("#reviewer", "bob")
    page.page.fill("#import-path", "data/ask.jsonl")
    page.page.click("#import")
    page.page.locator("#review-result", has_text="imported 1 replies").wait_for()
    joke = page.page.locator("#review-item", has_text="Tell me a joke.")
    for _ in range(3):  # items alice skipped are offered to bob first: he skips them too
        try:
            joke.wait_for(timeout=2000)
            break
        except PlaywrightTimeout:
            page.page.click("#skip")
    page.page.select_option("#new-source", "adapter")
    page.page.select_option("#new-run", "runs/alpha")
    page.page.click("#generate")
    page.page.locator("[data-candidate='1']", has_text="adapter runs/alpha").wait_for(timeout=60_000)

    engine = load_engine(str(tiny_model_dir), model_id="tiny")
    try:
        with running_server(engine) as (url, _):
            page.page.select_option("#new-source", "endpoint")
            page.page.fill("#new-url", f"{url}/v1")
            page.page.fill("#new-model", "tiny")
            page.page.click("#generate")
            page.page.locator("[data-candidate='2']", has_text="endpoint tiny @").wait_for(timeout=60_000)
    finally:
        engine.close(drain=False)
    page.snap("review-add-candidates")
    store = ReviewStore.open(ui.root)
    item = next(i for i in store.items() if i.prompt[0].content == "Tell me a joke.")
    store.close()
    assert [c.source["kind"] for c in item.candidates] == ["dataset", "adapter", "endpoint"]
    assert all(c.reply[0].role == "assistant" for c in item.candidates)


def test_playground_base_and_adapter_side_by_side(page, ui):
    page.open("playground")
    page.page.check("input[data-run='runs/alpha']")
    page.page.fill("input[name='max_tokens']", "12")
    page.page.fill("#prompt", "Hi")
    page.page.click("#send")
    for model in ("base", "adapter1"):
        page.wait(f"[data-model='{model}'][data-finish]", timeout=60_000)
    chunks = {m: int(page.page.get_attribute(f"[data-model='{m}']", "data-chunks") or 0) for m in ("base", "adapter1")}
    assert all(n > 1 for n in chunks.values()), f"both replies arrive as a stream of pieces: {chunks}"
    replies = {m: page.page.inner_text(f"[data-reply='{m}']") for m in ("base", "adapter1")}
    page.snap("playground")

    page.page.click("[data-model='base'] .thumb-up")
    page.page.locator("[data-model='base'] .feedback-state", has_text="saved").wait_for()
    page.page.click("[data-model='adapter1'] .thumb-down")
    page.page.locator("[data-model='adapter1'] .feedback-state", has_text="saved").wait_for()
    page.page.click("[data-model='adapter1'] .write-better")
    page.page.fill("[data-model='adapter1'] textarea.better", "Hello! How can I help?")
    page.page.click("[data-model='adapter1'] .save-better")
    page.page.locator("[data-model='adapter1'] .feedback-state", has_text="saved").wait_for()
    page.snap("playground-feedback")

    store = ReviewStore.open(ui.root)
    item = next(i for i in store.items() if i.prompt[0].content == "Hi")
    assert store.holder(item.id) is None, "the playground's judgement leaves the item free for reviewers"
    store.close()
    by_source = {c.source["kind"]: c for c in item.candidates}
    assert set(by_source) == {"model", "adapter"}
    assert by_source["model"].text == replies["base"] and by_source["adapter"].text == replies["adapter1"]
    assert item.state.thumbs == {by_source["model"].index: True, by_source["adapter"].index: False}
    assert item.state.edits == {by_source["adapter"].index: "Hello! How can I help?"}


def test_playground_few_shot_variant_and_bad_requests(ui):
    """Over HTTP: the few-shot prompt streams like the plain one; a request the playground cannot serve
    is a 400 with an OpenAI-style body, not a broken stream."""
    import urllib.error
    import urllib.request

    def post(body):
        request = urllib.request.Request(f"{ui.url}/api/playground/chat", json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {ui.token}", "X-Tuneforge-Token": ui.token,
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    chat = {"model": "base", "messages": [{"role": "user", "content": "Hey"}], "sampling": {"max_tokens": 4}}
    status, body = post({**chat, "variant": "few_shot", "pool": "data/chat.jsonl", "k": 1})
    events = [json.loads(line) for line in body.splitlines()]
    assert status == 200 and events[-1]["done"] in ("stop", "length") and events[-1]["tokens"] >= 1
    status, body = post({**chat, "model": "nope"})
    assert status == 400 and "choose one of" in json.loads(body)["error"]["message"]
    status, body = post({**chat, "adapters": {f"a{i}": "runs/alpha" for i in range(4)}})
    assert status == 400 and "at most 3 adapters" in json.loads(body)["error"]["message"]
    status, body = post({**chat, "variant": "rag"})
    assert status == 400 and "rag needs an index" in json.loads(body)["error"]["message"]
    status, body = post({**chat, "adapters": {"x": "../../etc"}})
    assert status == 403
