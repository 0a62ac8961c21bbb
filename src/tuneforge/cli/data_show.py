"""`tuneforge data show`: samples exactly as the model will see them, trained tokens highlighted."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tuneforge.cli.common import ColumnOption, FormatOption, pairs
from tuneforge.config import DEFAULT_MODEL, DataConfig, DatasetConfig, TemplateConfig
from tuneforge.formatting import IGNORE, Encoder, SampleRejected, template_names
from tuneforge.formatting.runs import labelled_parts, trained_runs

TRAINED = "bold black on green"
GIVEN = "dim"


def show(
    inputs: Annotated[list[str], typer.Argument(
        show_default=False, help="Data files, folders or globs (any format `tuneforge data convert` reads).")],
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="How many samples to show, from the start.")] = 3,
    template: Annotated[str, typer.Option(
        "--template", "-t",
        help=f"Chat template: {', '.join(template_names())} (auto: the tokenizer's own).")] = "auto",
    model: Annotated[str, typer.Option("--model", "-m", help="Model whose tokenizer to use.")] = DEFAULT_MODEL,
    cutoff: Annotated[int, typer.Option(min=1, help="Maximum tokens per sample (template.cutoff_len).")] = 1024,
    train_on: Annotated[Literal["assistant", "last", "all"], typer.Option(
        help="Which tokens carry loss: every assistant reply, only the last, or everything.")] = "assistant",
    format: FormatOption = "auto",
    column: ColumnOption = None,
) -> None:
    """Print the first samples as token text, trained tokens highlighted, with token counts; then
    which template rendered them (auto may pick a tool-capable built-in) and unfilled {{placeholders}}."""
    from tuneforge.doctor import placeholder_counts, placeholder_message
    from tuneforge.io import read_samples
    from tuneforge.models import load_tokenizer

    data = DataConfig(datasets=[DatasetConfig(path=inputs, format=format, columns=pairs(column, "--column"))])
    samples, report = read_samples(data)
    tokenizer = load_tokenizer(model)
    encoder = Encoder.create(tokenizer, TemplateConfig(name=template, cutoff_len=cutoff, train_on=train_on), samples)
    console = Console()
    if encoder.note:
        console.print(f"[cyan]note[/] {encoder.note}", highlight=False)
    totals = {"tokens": 0, "trained": 0, "truncated": 0, "dropped": 0}
    for i, sample in enumerate(samples[:n]):
        # The source goes inside the panel: a title too wide for the terminal is cut, counts and all.
        title, where = f"#{i + 1} · {sample.kind}", Text(sample.where, style="dim", overflow="fold")
        try:
            enc = encoder.encode(sample)
        except SampleRejected as r:
            totals["dropped"] += 1
            console.print(Panel(Text.assemble(where, "\n", (f"dropped: {r.reason}", "bold red"), f"\n{r.detail}"),
                                title=title, title_align="left", border_style="red"))
            continue
        parts = labelled_parts(enc)
        tokens = sum(len(ids) for _, ids, _ in parts)
        trained = sum(t != IGNORE for _, _, labels in parts for t in labels)
        totals["tokens"] += tokens
        totals["trained"] += trained
        totals["truncated"] += enc.truncated
        body = Group(where, *(_label(name) + _highlight(tokenizer, ids, labels) for name, ids, labels in parts))
        cut = " · [yellow]truncated[/]" if enc.truncated else ""
        console.print(Panel(body, title=f"{title} · {tokens} tokens, {trained} trained{cut}", title_align="left"))
    console.print(_summary(len(samples), min(n, len(samples)), report.n_rejected, totals, encoder.template.name))
    for name, count in placeholder_counts(samples).items():
        console.print(f"[yellow]placeholder[/] {placeholder_message(name, count)}", highlight=False)


def _label(name: str) -> Text:
    return Text(f"── {name} ──\n", style="bold") if name else Text()


def _highlight(tokenizer, ids: list[int], labels: list[int]) -> Text:
    """The trained and untrained runs of a sample, each styled."""
    text = Text()
    for run, trained in trained_runs(tokenizer, ids, labels):
        text.append(run, style=TRAINED if trained else GIVEN)
    return text


def _summary(total: int, shown: int, read_rejected: int, totals: dict[str, int], template: str) -> Table:
    table = Table(show_header=False, title=f"template {template}", title_justify="left", min_width=50)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    share = totals["trained"] / totals["tokens"] if totals["tokens"] else 0.0
    for name, value in [("samples shown", f"{shown} of {total}"), ("records rejected while reading", read_rejected),
                        ("tokens (shown)", totals["tokens"]), ("trained tokens", f"{totals['trained']} ({share:.0%})"),
                        ("truncated", totals["truncated"]), ("dropped", totals["dropped"])]:
        table.add_row(name, str(value))
    table.caption = Text.assemble(("trained", TRAINED), " tokens carry loss; ", ("dim", GIVEN), " ones are given")
    return table
