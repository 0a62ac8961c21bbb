"""`tuneforge serve` as a real process for integration tests: started on a free loopback port with an
API key, waited for, and stopped again."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

BASE = "smollm2-135m-instruct"
"""The default model's alias."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def tuneforge_serve(*args: str, key: str = "test-key", model: str = BASE, start_timeout: float = 180) -> Iterator[Any]:
    """`tuneforge serve --model MODEL ARGS` on 127.0.0.1; yields an official `openai` client for it once
    it answers `/v1/models`."""
    openai = pytest.importorskip("openai", reason="the serve extra is needed: pip install 'tuneforge[serve]'")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tuneforge", "serve", "--model", model, "--port", str(port),
                               "--api-key", key, *args], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=120)
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert server.poll() is None, f"tuneforge serve exited: {server.stdout.read() if server.stdout else ''}"
                assert time.monotonic() < deadline, "tuneforge serve did not start"
                time.sleep(0.3)
        yield client
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
