"""`tuneforge rag index` and `tuneforge rag ask`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from tuneforge.config import DEFAULT_MODEL

app = typer.Typer(help="Retrieval-augmented generation: index documents, ask questions over them.",
                  no_args_is_help=True)
Retrieval = Literal["hybrid", "dense", "bm25"]


@app.command()
def index(
    docs: Annotated[list[str], typer.Argument(help="Text files (.txt .md .rst), folders, or data files "
                                                   "(one document per record).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Index directory to write.", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Whose tokenizer counts chunk tokens.")] = DEFAULT_MODEL,
    chunk_tokens: Annotated[int, typer.Option(help="Tokens per chunk.")] = 128,
    overlap: Annotated[int, typer.Option(help="Tokens shared by neighbouring chunks.")] = 32,
) -> None:
    """Chunk documents by tokens with overlap, embed them with MiniLM and write a persistent index
    (numpy vectors + JSON chunks + BM25 term counts, jieba-segmented for Chinese)."""
    from tuneforge.cli.progress import TaskProgress
    from tuneforge.models import load_tokenizer
    from tuneforge.rag import build_index

    console = Console()
    with TaskProgress(console) as progress:
        built = build_index(docs, load_tokenizer(model), chunk_tokens=chunk_tokens, overlap=overlap,
                            on_progress=progress)
    built.save(output)
    console.print(f"{len(built.meta['documents'])} documents → {len(built.chunks)} chunks · index in {output}")


@app.command()
def ask(
    index_dir: Annotated[Path, typer.Argument(help="An index written by `tuneforge rag index`.")],
    question: Annotated[str, typer.Argument(help="The question.")],
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Alias, HF directory, .gguf file or hub id.")] = DEFAULT_MODEL,
    top_k: Annotated[int, typer.Option(help="Chunks put into the prompt.")] = 3,
    retrieval: Annotated[Retrieval, typer.Option(help="hybrid (dense + BM25 fused), dense or bm25.")] = "hybrid",
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens in the answer.")] = 256,
) -> None:
    """Answer a question from the documents of an index: retrieve, then generate with the sources."""
    from tuneforge.models import load_model
    from tuneforge.rag import load_index, rag_prompt
    from tuneforge.serve.generate import generate_reply
    from tuneforge.types import Message

    console = Console()
    hits = load_index(index_dir).search(question, top_k, retrieval)
    base, tokenizer = load_model(model)
    reply = generate_reply(base, tokenizer, rag_prompt([Message("user", question)], hits),
                           max_new_tokens=max_new_tokens, stream=lambda text: console.print(text, end=""))
    console.print()
    for i, hit in enumerate(hits, 1):
        console.print(f"[dim][{i}] {hit.chunk.source} chars {hit.chunk.start}-{hit.chunk.end} "
                      f"(score {hit.score:.3f})[/]")
    if not reply.strip():
        console.print("[yellow]the model gave an empty answer[/]")
