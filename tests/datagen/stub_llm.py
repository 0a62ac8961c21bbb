"""A stub OpenAI-compatible server on 127.0.0.1 for fault injection: it counts every request it receives
and answers, and plays scripted faults (429 with Retry-After, 5xx, hangs past the client's timeout,
malformed and truncated bodies) before answering like a small deterministic teacher."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def request_id(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def teacher_reply(body: dict, k: int) -> str:
    """What the stub teacher writes for choice k of a request."""
    text = body["messages"][-1]["content"]
    word = hashlib.md5(f"{text}{body.get('seed')}".encode()).hexdigest()[:6]
    if "more new and different tasks" in text:
        first = re.search(r"^1\. (.*)$", text, re.MULTILINE).group(1)
        return (f"Sure! Here they are:\n4. Explain how the {word} festival is celebrated in spring.\n"
                f"5. {first}\n6. Draw a picture of a {word} cat.\n7. Hi.\n"
                f"8. List three facts about planet {word} and its moons.")
    if "Rewritten prompt:" in text or "New prompt:" in text:
        instruction = text.split("Given prompt: ")[1].split("\n")[0]
        if "sorry" in instruction:
            return "Rewritten prompt: " + instruction + " Also say why in detail, step by step, please."
        if "copy" in instruction:
            return "#Rewritten Prompt#: make the given prompt harder"
        return f"Rewritten prompt: {instruction} Answer in exactly {len(word)} bullet points about {word}."
    if "[Assistant's answer]" in text:
        answer = text.split("[Assistant's answer]\n")[1].split("\n\nReply with")[0]
        if "unjudgeable" in text:
            return "I cannot tell."
        score = re.search(r"quality (\d+)", answer)
        return json.dumps({"score": int(score.group(1)) if score else 5, "reason": "stub"})
    if "JSON" in text:
        if k == 3:
            return f"Sure! Here it is:\n```json\n{json.dumps({'name': word, 'age': k})}\n```\nHope it helps."
        return json.dumps({"name": word, "age": k}) if k % 2 else f"name {word}, age {k}"
    if "sorry" in text:
        return "Sorry, I can't."
    return f"Answer {k} to '{text[:40]}' with quality {3 + 2 * k} ({word})."


class StubLLM:
    def __init__(self, api_key: str | None = None, models: tuple[str, ...] = ("teacher", "judge", "student")):
        self.api_key, self.models = api_key, models
        self.received: list[str] = []  # request ids, in arrival order
        self.answered: list[str] = []  # request ids that got a 200 with a full body
        self.script: list[tuple] = []  # faults to play on the next requests, in order
        self.hold_after: int | None = None  # hold every request once this many were answered
        self.held = 0
        self.delay = 0.0  # seconds each answer takes
        self.inflight = self.max_inflight = 0
        self.release = threading.Event()
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.handle(self, body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _send(self, h, status: int, payload: bytes, headers: dict | None = None, length: int | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload) if length is None else length))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(payload)
        h.wfile.flush()

    def _error(self, h, status: int, message: str, headers: dict | None = None) -> None:
        self._send(h, status, json.dumps({"error": {"message": message, "type": "error"}}).encode(), headers)

    def handle(self, h, body: dict) -> None:
        rid = request_id(body)
        with self.lock:
            self.received.append(rid)
            fault = self.script.pop(0) if self.script else None
            hold = self.hold_after is not None and len(self.answered) >= self.hold_after
            if hold:
                self.held += 1
        if hold:  # the client is killed meanwhile: this request is never answered
            self.release.wait(30)
            h.close_connection = True
            return
        with self.lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            time.sleep(self.delay)
            self._answer(h, body, rid, fault)
        finally:
            with self.lock:
                self.inflight -= 1

    def _answer(self, h, body: dict, rid: str, fault: tuple | None) -> None:
        if self.api_key and h.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(h, 401, "invalid or missing API key")
        if body["model"] not in self.models:
            return self._error(h, 404, f"model '{body['model']}' not found")
        if fault is not None:
            kind = fault[0]
            if kind == "status":
                return self._error(h, fault[1], "overloaded", fault[2] if len(fault) > 2 else None)
            if kind == "hang":
                time.sleep(fault[1])
                h.close_connection = True
                return
            if kind == "malformed":
                return self._send(h, 200, b"<html>Bad gateway</html>")
            if kind == "truncated":
                h.close_connection = True
                return self._send(h, 200, b'{"choices": [{"mess', length=400)
        n = body.get("n", 1)
        texts = [teacher_reply(body, k) for k in range(n)]
        payload = {"id": "x", "object": "chat.completion", "model": body["model"],
                   "choices": [{"index": k, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                               for k, t in enumerate(texts)],
                   "usage": {"prompt_tokens": 10, "completion_tokens": 5 * n, "total_tokens": 10 + 5 * n}}
        self._send(h, 200, json.dumps(payload).encode())
        with self.lock:
            self.answered.append(rid)
