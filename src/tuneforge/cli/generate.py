"""`tuneforge generate`: answer every conversation of a dataset with a model; resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tuneforge.config import DEFAULT_MODEL


def generate(
    input: Annotated[str, typer.Argument(help="Dataset file, folder or glob (any format `tuneforge data` reads).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Replies, one JSON line per input sample.")],
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Alias, HF directory, .gguf file or hub id.")] = DEFAULT_MODEL,
    adapter: Annotated[Optional[str], typer.Option(
        help="A trained artefact of any method (a run directory or its final/).")] = None,
    template: Annotated[str, typer.Option(
        help="Chat template: auto (the tokenizer's own) or a built-in name.")] = "auto",
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens per reply.")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy decoding.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed (each sample's reply is reproducible).")] = None,
    batch_size: Annotated[int, typer.Option(help="Most conversations decoding together.")] = 16,
) -> None:
    """Generate a reply to each conversation (its last assistant turn, if any, is kept as `reference`).
    Rerunning with the same output continues where the previous run stopped."""
    from rich.console import Console

    from tuneforge.cli.progress import TaskProgress
    from tuneforge.io import read_samples
    from tuneforge.serve.engine import load_engine
    from tuneforge.serve.generate import generate_file
    from tuneforge.serve.sampling import SamplingParams
    from tuneforge.threads import use_threads

    use_threads()

    samples, _ = read_samples(input)
    params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    adapters = {"adapter": adapter} if adapter else None
    with load_engine(model, adapters, template=template, max_batch_size=batch_size) as engine, \
            TaskProgress(Console()) as progress:
        count = generate_file(engine, samples, output, params, model="adapter" if adapter else None,
                              on_progress=progress.of("generate"))
    typer.echo(f"{count} replies generated, {len(samples) - count} already there · {output}")
