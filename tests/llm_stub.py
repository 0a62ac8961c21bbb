"""A stand-in for an OpenAI-compatible chat endpoint on 127.0.0.1, for fault injection only (real LLM
calls in tests go to `tuneforge serve`): `answer(body, headers)` decides each reply, and every request
is kept in `seen`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any], Mapping[str, str]], "tuple[int, str] | str"]
"""(request body, headers) -> the assistant's reply text (status 200), or (status, reply text) where
a non-200 status sends an OpenAI-style error body with that text as its message."""


@dataclass
class Stub:
    url: str
    """The base URL, ending in /v1."""
    seen: list[dict[str, Any]] = field(default_factory=list)
    """Each request's body, with its `auth` header and `path`."""


@contextmanager
def chat_stub(answer: Answer) -> Iterator[Stub]:
    stub = Stub("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            stub.seen.append({"auth": self.headers.get("Authorization"), "path": self.path, **body})
            out = answer(body, self.headers)
            status, text = out if isinstance(out, tuple) else (200, out)
            payload = ({"choices": [{"message": {"role": "assistant", "content": text}}]} if status == 200 else
                       {"error": {"message": text, "type": "invalid_request_error"}})
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep test output quiet
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    stub.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield stub
    finally:
        httpd.shutdown()
        httpd.server_close()
