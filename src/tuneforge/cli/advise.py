"""`tuneforge advise`: which strategy to try first, and a compare config to check it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
import yaml
from rich.console import Console

Task = Literal["knowledge", "format", "skill"]
Level = Literal["low", "medium", "high"]


def _ask(value, question: str, *, kind=str, choices: tuple[str, ...] = (), interactive: bool):
    """The flag's value, else the user's answer, else (not interactive) an error naming the flag."""
    if value is not None:
        return value
    if not interactive:
        raise typer.BadParameter(f"missing answer: {question} (pass the flag, or drop --no-input)")
    if kind is bool:
        return typer.confirm(question, default=False)
    hint = f" ({'/'.join(choices)})" if choices else ""
    while True:
        answer = typer.prompt(question + hint, type=kind)
        if not choices or answer in choices:
            return answer
        typer.echo(f"please answer one of: {', '.join(choices)}")


def advise(
    task: Annotated[Optional[Task], typer.Option(
        help="knowledge: facts from your documents; format: an output format/style/behaviour; "
             "skill: a task-specific ability.")] = None,
    examples: Annotated[Optional[int], typer.Option(
        help="Labelled examples (question + ideal answer) you have.")] = None,
    documents: Annotated[Optional[bool], typer.Option(
        "--documents/--no-documents", help="You have documents holding the knowledge.")] = None,
    changes_often: Annotated[Optional[bool], typer.Option(
        "--changes-often/--stable", help="The knowledge changes often.")] = None,
    hallucination_tolerance: Annotated[Optional[Level], typer.Option(
        help="How acceptable a confident wrong answer is.")] = None,
    inference_budget: Annotated[Optional[Level], typer.Option(help="How much each query may cost.")] = None,
    can_train: Annotated[Optional[bool], typer.Option(
        "--can-train/--cannot-train", help="You have a GPU or CPU time for fine-tuning.")] = None,
    train_data: Annotated[str, typer.Option(
        "--train", help="Training set path for the generated config.")] = "data/train.jsonl",
    eval_data: Annotated[str, typer.Option(
        "--eval", help="Eval set path for the generated config.")] = "data/eval.jsonl",
    docs: Annotated[Optional[list[str]], typer.Option("--docs", help="Knowledge documents for RAG.")] = None,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Where to write the compare config.")] = Path("compare.yaml"),
    interactive: Annotated[bool, typer.Option(
        "--input/--no-input", help="Ask for what the flags leave out.")] = True,
) -> None:
    """Recommend zero-shot, few-shot, RAG or fine-tuning for your use case, with the reasons, and write a
    config that trains a LoRA artefact and compares every strategy on your data."""
    from tuneforge.eval.advice import UseCase, compare_config
    from tuneforge.eval.advice import advise as advise_use_case

    ask = lambda value, q, **kw: _ask(value, q, interactive=interactive, **kw)  # noqa: E731
    case = UseCase(
        task=ask(task, "What must the model learn: knowledge, format or skill?",
                 choices=("knowledge", "format", "skill")),
        examples=ask(examples, "How many labelled examples do you have?", kind=int),
        has_documents=ask(documents, "Do you have documents that hold the knowledge?", kind=bool),
        knowledge_changes_often=ask(changes_often, "Does the knowledge change often?", kind=bool),
        hallucination_tolerance=ask(hallucination_tolerance, "Tolerance for hallucination",
                                    choices=("low", "medium", "high")),
        inference_budget=ask(inference_budget, "Inference budget per query", choices=("low", "medium", "high")),
        can_train=ask(can_train, "Can you train (GPU, or CPU time)?", kind=bool),
    )
    rec = advise_use_case(case)
    # Paths typed here are relative to the current directory; the config file reads them relative to itself.
    rebase = lambda p: os.path.relpath(Path(p).expanduser().absolute(), output.parent.absolute())  # noqa: E731
    config = compare_config(case, train=rebase(train_data), eval_set=rebase(eval_data),
                            documents=[rebase(d) for d in docs or []], run_dir=rebase("runs/advised-lora"))
    output.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    console = Console()
    console.print(f"[bold green]recommended: {rec.strategy}[/]")
    for reason in rec.reasons:
        console.print(f"  · {reason}")
    steps = (f"tuneforge train {output} && " if case.can_train else "") + f"tuneforge compare {output}"
    console.print(f"check it on your data: {steps}")
