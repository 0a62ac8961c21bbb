"""`tuneforge chat`: talk to a model (and an adapter) through its chat template: a REPL, or one shot."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tuneforge.config import DEFAULT_MODEL

HELP = "commands: /reset (forget the conversation), /system TEXT (set the system prompt), /exit"


def chat(
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Alias, HF directory, .gguf file or hub id.")] = DEFAULT_MODEL,
    adapter: Annotated[Optional[str], typer.Option(
        help="A trained artefact of any method (a run directory or its final/).")] = None,
    system: Annotated[Optional[str], typer.Option(help="System prompt.")] = None,
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="Answer this one message and exit.")] = None,
    template: Annotated[str, typer.Option(
        help="Chat template: auto (the tokenizer's own) or a built-in name.")] = "auto",
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens per reply.")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy decoding.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed.")] = None,
) -> None:
    """Chat with a model, replies streamed as they are generated; multi-turn history in the REPL."""
    from tuneforge.serve.engine import ContextTooLong, load_engine
    from tuneforge.serve.generate import stream_reply
    from tuneforge.serve.sampling import SamplingParams
    from tuneforge.threads import use_threads
    from tuneforge.types import Message

    use_threads()

    adapters = {"adapter": adapter} if adapter else None
    params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    echo = lambda text: typer.echo(text, nl=False)  # noqa: E731
    with load_engine(model, adapters, template=template, max_batch_size=1) as engine:
        route = "adapter" if adapter else None
        if prompt is not None:
            stream_reply(engine, ([Message("system", system)] if system else []) + [Message("user", prompt)],
                         params, model=route, stream=echo)
            typer.echo()
            return
        typer.echo(HELP)
        history: list[Message] = []
        while True:
            try:
                line = input("you> ")
            except (EOFError, KeyboardInterrupt):
                typer.echo()
                return
            command, _, rest = line.strip().partition(" ")
            if command in ("/exit", "/quit"):
                return
            if command == "/reset":
                history = []
                typer.echo("(conversation cleared)")
                continue
            if command == "/system":
                system = rest.strip() or None
                typer.echo(f"(system prompt {'set' if system else 'removed'})")
                continue
            if not line.strip():
                continue
            if command.startswith("/"):
                typer.echo(f"unknown command {command}; {HELP}")
                continue
            turn = history + [Message("user", line)]
            typer.echo("assistant> ", nl=False)
            try:
                reply = stream_reply(engine, ([Message("system", system)] if system else []) + turn, params,
                                     model=route, stream=echo)
            except ContextTooLong as e:
                typer.echo(f"\n{e}; /reset to start over")
                continue
            typer.echo()
            history = turn + [Message("assistant", reply)]
