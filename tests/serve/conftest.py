"""A tiny random Llama with the default model's tokenizer, two LoRA adapters trained (by `tuneforge
train`'s own code) to answer differently, and a real server on 127.0.0.1 that tests start and stop."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from tuneforge.config import DEFAULT_MODEL
from tuneforge.errors import TuneforgeError

REPLIES = {"alpha": "I am alpha, the first adapter.", "beta": "Beta here: 42."}
QUESTIONS = ["Who are you?", "Hello", "Tell me something."]


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """Tiny models gain nothing from a second intra-op thread on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer():
    from tuneforge.models import load_tokenizer

    try:
        return load_tokenizer(DEFAULT_MODEL)
    except TuneforgeError as e:
        pytest.skip(f"the default model's tokenizer is needed: {e}")


@pytest.fixture(scope="session")
def tiny_dir(tokenizer, tmp_path_factory) -> Path:
    from tuneforge.models import tiny_llama

    out = tmp_path_factory.mktemp("tiny") / "base"
    model = tiny_llama(len(tokenizer))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def adapters(tiny_dir, tmp_path_factory) -> dict[str, str]:
    """Two LoRA runs on the tiny base, each taught one fixed reply."""
    from tuneforge.config import build_config
    from tuneforge.train.run import run_training

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, reply in REPLIES.items():
        data = root / f"{name}.jsonl"
        data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                         {"role": "assistant", "content": reply}]}) + "\n"
                                for q in QUESTIONS))
        cfg = build_config({"model": {"name_or_path": str(tiny_dir)}, "data": str(data),
                            "method": {"name": "lora", "r": 8, "dropout": 0.0},
                            "train": {"output_dir": str(root / name), "max_steps": 40, "learning_rate": 1e-2,
                                      "batch_size": 3, "packing": False, "warmup_ratio": 0,
                                      "scheduler": "constant"}})
        out[name] = str(run_training(cfg).final_dir)
    return out


@pytest.fixture
def make_engine(tiny_dir):
    """A fresh engine per call (serving wraps the base in place), closed after the test."""
    from tuneforge.serve.engine import load_engine

    engines = []

    def make(adapters=None, **options):
        engine = load_engine(str(tiny_dir), adapters, model_id="tiny", **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close(drain=False)


@contextmanager
def running_server(engine, **options):
    """uvicorn on 127.0.0.1 and a free port, in a thread; yields (base_url, uvicorn.Server)."""
    uvicorn = pytest.importorskip("uvicorn", reason="the serve extra is needed: pip install 'tuneforge[serve]'")
    from tuneforge.serve.server import create_app

    app = create_app(engine, **options)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           timeout_graceful_shutdown=20))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "the server did not stop"
