"""`tuneforge chat`: talk to a model through its chat template."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tuneforge.config import DEFAULT_MODEL, ModelConfig


def chat(
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The user message (one-shot).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Alias, HF directory, .gguf file or hub id.")] = DEFAULT_MODEL,
    system: Annotated[Optional[str], typer.Option(help="System prompt.")] = None,
    template: Annotated[str, typer.Option(help="Chat template: auto (the tokenizer's own) or a built-in name.")] = "auto",
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy decoding.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Answer one prompt with a model, streaming the reply to the terminal."""
    from tuneforge.serve.generate import generate_reply
    from tuneforge.models import load_model
    from tuneforge.types import Message

    loaded, tokenizer = load_model(ModelConfig(name_or_path=model))
    messages = ([Message("system", system)] if system else []) + [Message("user", prompt)]
    generate_reply(loaded, tokenizer, messages, template=template, max_new_tokens=max_new_tokens,
                   temperature=temperature, seed=seed, stream=lambda text: typer.echo(text, nl=False))
    typer.echo()
