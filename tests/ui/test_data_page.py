"""Data page in the browser (samples with the trained tokens marked, filters, report, curation rejects)
and the access rules over HTTP (token, CSRF header, folders, symlinks, upload size)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

import pytest
from tests.ui.conftest import running_ui

CHATS = [("What is 2+2?", "4", "math"), ("Name a colour.", "Blue.", "chat"), ("你好吗？", "我很好。", "chat")]


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("root")
    (root / "data").mkdir()
    (root / "data" / "chat.jsonl").write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], "task": t},
                   ensure_ascii=False) + "\n" for q, a, t in CHATS), encoding="utf-8")
    curated = root / "curated"
    curated.mkdir()
    (curated / "data.jsonl").write_text((root / "data" / "chat.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    rejects = [("exact_duplicate", "Hi", "Hello"), ("exact_duplicate", "Hi!", "Hello"), ("too_short", "a", "b")]
    (curated / "rejects.jsonl").write_text("".join(
        json.dumps({"operator": "op", "reason": r, "detail": None, "where": f"in.jsonl:{i + 1}",
                    "record": {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}})
        + "\n" for i, (r, q, a) in enumerate(rejects)), encoding="utf-8")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.jsonl").write_text("{}\n")
    os.symlink(outside / "secret.jsonl", root / "data" / "link.jsonl")
    with running_ui(root, str(tiny_model_dir)) as ui:
        yield ui


def test_dataset_shows_the_trained_tokens(page, ui):
    page.open("data")
    page.page.click("a[data-path='data']")
    page.page.click("a[data-path='data/chat.jsonl']")
    page.wait("article.sample")
    cards = page.page.locator("article.sample")
    assert cards.count() == 3
    first = cards.nth(0)
    # Only the reply (and its end-of-turn token) is trained; the question is given context.
    trained = first.locator("span.trained").all_inner_texts()
    assert trained and trained[0].startswith("4")
    assert "What is 2+2?" in " ".join(first.locator("span.given").all_inner_texts())
    assert "What is 2+2?" not in " ".join(trained)
    assert "3 of 3 samples match" in page.page.inner_text("p.summary")
    page.snap("data-samples")

    page.page.select_option("select[name='task']", "math")
    page.page.click("button[type='submit']")
    page.page.locator("p.summary", has_text="1 of 3 samples match").wait_for()
    assert page.page.locator("article.sample").count() == 1

    page.page.select_option("select[name='task']", "")
    page.page.fill("input[name='language']", "zh")
    page.page.click("button[type='submit']")
    page.page.locator("p.summary", has_text="1 of 3 samples match").wait_for()
    assert "你好吗" in page.page.inner_text("article.sample")

    page.page.click("button[data-tab='report']")
    frame = page.page.frame_locator("iframe.report")
    assert "3" in frame.locator("body").inner_text()
    page.snap("data-report")


def test_curation_rejects_grouped_by_reason(page, ui):
    page.open("data")
    page.page.click("a[data-path='curated']")
    page.wait("article.sample")
    page.page.click("button[data-tab='rejects']")
    page.wait("details.reject")
    groups = page.page.locator("details.reject summary").all_inner_texts()
    assert groups == ["exact_duplicate · 2", "too_short · 1"]
    page.snap("data-rejects")


def _get(ui, path, headers=None, method="GET", data=None):
    request = urllib.request.Request(ui.url + path, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(request) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_access_needs_the_token(ui):
    status, body = _get(ui, "/api/state")
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_token"
    assert _get(ui, "/", {"Cookie": "tuneforge_ui_token=wrong"})[0] == 401
    assert _get(ui, "/static/app.js")[0] == 401
    assert _get(ui, "/api/state", {"Authorization": f"Bearer {ui.token}"})[0] == 200
    # A state change with the cookie alone (what another site's form could send) is refused.
    cookie = {"Cookie": f"tuneforge_ui_token={ui.token}", "Content-Type": "application/json"}
    status, body = _get(ui, "/api/jobs/1/stop", cookie, "POST", b"{}")
    assert status == 403 and json.loads(body)["error"]["code"] == "csrf"
    status, body = _get(ui, "/api/jobs/1/stop", {**cookie, "X-Tuneforge-Token": ui.token}, "POST", b"{}")
    assert status == 404  # with the header, the request goes through (to a job that does not exist)


def test_paths_outside_the_root_are_refused(ui):
    auth = {"Authorization": f"Bearer {ui.token}"}
    for path in ["../../etc/passwd", "/etc/passwd", "data/../../etc/passwd", "data/link.jsonl"]:
        status, body = _get(ui, "/api/data/samples?" + urllib.parse.urlencode({"path": path}), auth)
        assert status == 403, path
        assert "outside the workbench's folders" in json.loads(body)["error"]["message"]
    assert _get(ui, "/files/..%2F..%2F..%2Fetc%2Fpasswd", auth)[0] == 403
    assert _get(ui, "/api/files?dir=..", auth)[0] == 403


def test_bad_requests_get_error_bodies(ui):
    auth = {"Authorization": f"Bearer {ui.token}"}
    (ui.root / "data" / "blob.bin").write_bytes(bytes(range(256)))
    for path, status, code in [("/api/configs/text?path=data/blob.bin", 400, "not_text"),
                               ("/api/configs/text?path=data", 400, "is_a_folder"),
                               ("/api/configs/text?path=data/missing.yaml", 404, "not_found"),
                               ("/api/data/samples?path=data/chat.jsonl&offset=x", 422, None),
                               ("/api/jobs/99", 404, "not_found")]:
        got, body = _get(ui, path, auth)
        assert (got, json.loads(body)["error"]["code"]) == (status, code), path


def test_uploads_are_limited(ui):
    headers = {"Authorization": f"Bearer {ui.token}", "X-Tuneforge-Token": ui.token}
    status, body = _get(ui, "/api/configs/upload?name=big.yaml", headers, "POST", b"x" * 5000)
    assert status == 413
    status, body = _get(ui, "/api/configs/upload?name=../../evil.yaml", headers, "POST", b"train: {}\n")
    assert status == 200 and json.loads(body)["path"] == ".tuneforge/uploads/evil.yaml"


def test_a_network_bind_needs_a_token(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from tuneforge.cli import app
    from tuneforge.ui.access import AccessError, check_bind

    check_bind("127.0.0.1", None)  # loopback may go without one (the user's explicit --no-token)
    check_bind("0.0.0.0", "a-token")
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        with pytest.raises(AccessError, match="needs an access token"):
            check_bind(host, None)
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("served on the network without a token"))
    result = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0", "--no-token", "--root", str(tmp_path)])
    assert isinstance(result.exception, AccessError)
