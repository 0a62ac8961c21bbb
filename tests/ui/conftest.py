"""The workbench in a real browser: one UI server (uvicorn in a thread, on 127.0.0.1 and a free port) and
one headless Chromium per test module. Each test fails on a browser console error and leaves
screenshots of the pages it saw under tests/ui/artifacts/ (git-ignored) at 1280×800 and 1920×1080."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "test-token-0123456789"
SIZES = {"1280x800": (1280, 800), "1920x1080": (1920, 1080)}


@dataclass
class UI:
    url: str
    token: str
    root: Path
    bench: object


@contextmanager
def running_ui(root: Path, model: str, token: str = TOKEN) -> Iterator[UI]:
    uvicorn = pytest.importorskip("uvicorn", reason="the serve extra is needed: pip install 'tuneforge[serve]'")
    from tuneforge.ui.access import Folders
    from tuneforge.ui.app import Workbench, create_app

    bench = Workbench(Folders(root), token, model=model, max_upload_bytes=4096)
    server = uvicorn.Server(uvicorn.Config(create_app(bench), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the workbench did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield UI(f"http://127.0.0.1:{port}", token, root, bench)
    finally:
        server.should_exit = True
        thread.join(30)
        bench.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is needed: pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


class Page:
    """A browser page logged in with the token, collecting console errors, taking screenshots."""

    def __init__(self, browser, ui: UI, name: str) -> None:
        self.ui, self.name = ui, name
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{ui.url}/?token={ui.token}")  # sets the cookie, then drops the token from the URL

    def open(self, hash_: str) -> None:
        self.page.goto(f"{self.ui.url}/#{hash_}")
        self.page.wait_for_selector(f"#page[data-page='{hash_.split('/')[0]}'][data-ready='1']")

    def wait(self, selector: str, timeout: float = 30_000):
        """wait_for_selector, failing with what the page's error line says."""
        try:
            return self.page.wait_for_selector(selector, timeout=timeout)
        except Exception:
            toast = self.page.inner_text("#toast") if self.page.is_visible("#toast") else ""
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-failed.png"))
            raise AssertionError(f"{selector} did not appear; the page says: {toast or '(nothing)'}") from None

    def snap(self, label: str) -> None:
        folder = ARTIFACTS / self.name
        folder.mkdir(parents=True, exist_ok=True)
        for size, (w, h) in SIZES.items():
            self.page.set_viewport_size({"width": w, "height": h})
            self.page.wait_for_timeout(150)  # canvases redraw on their next poll
            self.page.screenshot(path=str(folder / f"{label}-{size}.png"))
        self.page.set_viewport_size({"width": 1280, "height": 800})


@pytest.fixture
def page(browser, ui, request) -> Iterator[Page]:
    p = Page(browser, ui, request.node.name)
    yield p
    p.context.close()
    assert p.errors == [], f"the browser console logged errors: {p.errors}"


@pytest.fixture(scope="session", autouse=True)
def fresh_artifacts():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
