"""`tuneforge serve`: an OpenAI-compatible server for a model and its adapters."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from tuneforge.cli.common import ThreadsOption
from tuneforge.config import DEFAULT_MODEL
from tuneforge.errors import TuneforgeError


def _adapters(specs: list[str]) -> dict[str, str]:
    adapters = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise TuneforgeError(f"--adapter {spec!r}: expected NAME=PATH, e.g. --adapter support=runs/support/final")
        if name in adapters:
            raise TuneforgeError(f"--adapter: the name '{name}' is given twice")
        adapters[name] = path
    return adapters


def serve(
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Alias, HF directory, .gguf file or hub id.")] = DEFAULT_MODEL,
    adapter: Annotated[Optional[list[str]], typer.Option(
        help="NAME=PATH: serve a trained artefact of any method (a run directory or its final/) as model id NAME "
             "(repeatable).")] = None,
    host: Annotated[str, typer.Option(
        help="Interface to bind; 0.0.0.0 exposes the server to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    api_key: Annotated[Optional[str], typer.Option(
        help="Require 'Authorization: Bearer KEY' (default: $TUNEFORGE_API_KEY, else no key).")] = None,
    served_model_name: Annotated[Optional[str], typer.Option(help="Model id of the base (default: its name).")] = None,
    template: Annotated[str, typer.Option(
        help="Chat template of the base and of artefacts whose run recorded none: auto (the tokenizer's own) or "
             "a built-in name. An artefact keeps the template it was trained with.")] = "auto",
    backend: Annotated[str, typer.Option(help="'tuneforge' (this engine, CPU or GPU) or 'vllm' (CUDA).")] = "tuneforge",
    max_batch_size: Annotated[int, typer.Option(help="Most requests decoding together.")] = 32,
    max_waiting: Annotated[int, typer.Option(help="Queued requests beyond which new ones get 429.")] = 256,
    max_body_kb: Annotated[int, typer.Option(help="Largest request body accepted (413 beyond).")] = 1024,
    max_prompts: Annotated[int, typer.Option(
        min=1, help="Most prompts one /v1/completions request may hold (400 beyond).")] = 64,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16, float16.")] = "auto",
    record: Annotated[Optional[Path], typer.Option(
        help="Record every chat completion (conversation, reply, model id, sampling parameters; never the API "
             "key) in DIR/traffic.sqlite under the response's id, and take ratings and corrections at POST "
             "/v1/feedback. Off unless given. Build data sets from it with `tuneforge data from-feedback DIR`.",
        metavar="DIR")] = None,
    threads: ThreadsOption = None,
) -> None:
    """Serve /v1/chat/completions, /v1/completions, /v1/models and /health (OpenAI-compatible), and
    /v1/feedback with --record."""
    api_key = api_key or os.environ.get("TUNEFORGE_API_KEY") or None
    adapters = _adapters(adapter or [])
    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        typer.echo(f"warning: serving on {host} without an API key: anyone who can reach it can use it", err=True)
    if backend == "vllm" and record is not None:
        raise TuneforgeError("--record works with --backend tuneforge only")
    if backend == "vllm":
        from tuneforge.serve.vllm_backend import serve_vllm

        serve_vllm(model, adapters, host=host, port=port, api_key=api_key,
                   served_model_name=served_model_name, dtype=dtype)
        return
    if backend != "tuneforge":
        raise TuneforgeError(f"--backend {backend!r}: choose 'tuneforge' or 'vllm'")
    from tuneforge.serve.engine import load_engine
    from tuneforge.serve.record import Recorder
    from tuneforge.serve.server import serve as run_server
    from tuneforge.threads import use_threads

    use_threads(threads)
    recorder = Recorder(record) if record is not None else None  # before loading: a bad DIR fails fast

    engine = load_engine(model, adapters, model_id=served_model_name, dtype=dtype, template=template,
                         max_batch_size=max_batch_size, max_waiting=max_waiting)
    typer.echo(f"serving {', '.join(engine.model_ids)} on http://{host}:{port}/v1")
    if recorder is not None:
        typer.echo(f"recording chat completions in {recorder.path}; feedback at POST /v1/feedback")
    run_server(engine, host=host, port=port, api_key=api_key, max_body_bytes=max_body_kb * 1024,
               max_prompts=max_prompts, recorder=recorder)
