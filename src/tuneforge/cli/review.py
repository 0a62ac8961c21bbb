"""`tuneforge review import | next | export | stats`: people review LLM-written data in the terminal
(over SSH too); their edits, choices and thumbs become SFT, DPO and KTO data."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tuneforge.review import EXPORT_KINDS, SOURCE_KINDS, ExportKind, Item, ReviewConflict, ReviewStore

app = typer.Typer(help="Review LLM-written data: edit, choose, thumbs; export SFT / DPO / KTO data.",
                  no_args_is_help=True)
console = Console(highlight=False)

ProjectOption = Annotated[Path, typer.Option(
    "--project", "-p", help="Project directory; the review store is PROJECT/.tuneforge/review.db.")]
KEYS = ("[bold]1-4[/] choose best & next · [bold]e[/]N edit in $EDITOR · [bold]+[/]N / [bold]-[/]N thumbs · "
        "[bold]n[/] note · [bold]s[/] skip · [bold]d[/] done & next · [bold]q[/] quit")


@app.command(name="import")
def import_(
    data: Annotated[list[str], typer.Argument(help="Datasets: a `data generate` output folder or file, preference "
                                                   "pairs, or any chat data tuneforge reads.", show_default=False)],
    project: ProjectOption = Path("."),
    kind: Annotated[Optional[str], typer.Option(
        help=f"Where the replies come from: {', '.join(SOURCE_KINDS)} (default: generate for generated "
             "records, else dataset).")] = None,
    name: Annotated[Optional[str], typer.Option(
        help="Source name shown to reviewers (a model, adapter or endpoint); default: the file name.")] = None,
) -> None:
    """Add the records' replies as review candidates. Replies to the same prompt from several imports
    gather on one item (up to 4): import the teacher's answers, then your fine-tune's with `--kind
    adapter`, and reviewers compare them."""
    from tuneforge.review import import_file

    with ReviewStore.open(project) as store:
        for path in data:
            report = import_file(store, path, kind=kind, name=name)
            console.print(f"{path}: {report.samples} records, {report.added} of {report.offered} replies added "
                          f"({report.items_created} new items)")
            for reason, n in {**report.not_added, **report.unusable}.items():
                console.print(f"  not added {n:>6}  {reason}")


@app.command(name="next")
def next_(
    project: ProjectOption = Path("."),
    reviewer: Annotated[Optional[str], typer.Option(help="Your name in the log (default: your login).")] = None,
) -> None:
    """Review items one by one in the terminal (over SSH too): the prompt and the numbered candidates,
    then a key: 1-4 choose the best (done), e / e2 edit a candidate in $EDITOR, + / -2 thumbs up on
    candidate 1 / down on 2, n note, s skip (others still get it), d done, q quit (the item goes back)."""
    who = reviewer or getpass.getuser()
    done = 0
    with ReviewStore.open(project) as store:
        while (item := store.next_item(who)) is not None:
            try:
                finished = _review(store, item, who)
            except ReviewConflict as e:  # idle past the lease, and someone else took the item
                console.print(f"[yellow]{e}: your claim ran out; on to the next item[/]")
                continue
            if not finished:
                store.release(item.id, who)
                break
            done += 1
        else:
            console.print("[green]Nothing left to review.[/]")
    console.print(f"{done} item{'' if done == 1 else 's'} reviewed by {who}.")


def _review(store: ReviewStore, item: Item, who: str) -> bool:
    """One item, until it is done or skipped (True) or the reviewer quits (False)."""
    n = len(item.candidates)
    while True:
        item = store.item(item.id)
        _show(item)
        try:
            key = console.input("> ").strip().lower()
        except EOFError:
            return False
        arg = key[1:].strip()
        index = int(arg) - 1 if arg.isdigit() else 0
        if key == "q":
            return False
        if key.isdigit() and 1 <= int(key) <= n:
            store.choose(item.id, who, int(key) - 1)
            store.done(item.id, who)
            return True
        if key[:1] in ("e", "+", "-") and not 0 <= index < n:
            console.print(f"[red]no candidate {arg}[/]")
        elif key[:1] == "e":
            text = click.edit(item.reply(index)[-1].content, require_save=False)
            if text is not None and text.rstrip("\n") != item.reply(index)[-1].content:
                store.edit(item.id, who, index, text.rstrip("\n"))
        elif key[:1] in ("+", "-"):
            store.thumb(item.id, who, index, key[0] == "+")
            if len(store.item(item.id).state.thumbs) == n:  # every candidate judged
                store.done(item.id, who)
                return True
        elif key == "n":
            note = console.input("note: ").strip()
            if note:
                store.note(item.id, who, note)
        elif key == "s":
            store.skip(item.id, who)
            return True
        elif key == "d":
            store.done(item.id, who)
            return True
        else:
            console.print(KEYS)


def _show(item: Item) -> None:
    prompt = Group(*(Text.assemble((f"{m.role}: ", "bold cyan"), m.content) for m in item.prompt))
    parts: list[Panel | Text] = [Panel(prompt, title=f"item {item.id}", title_align="left")]
    state = item.state
    for c in item.candidates:
        thumb = state.thumbs.get(c.index)
        marks = ["edited" if c.index in state.edits else "", ("thumbs up" if thumb else "thumbs down")
                 if thumb is not None else "", "chosen" if state.choice == c.index else ""]
        title = f"{c.index + 1} · {c.source.get('kind')} {c.source.get('name', '')} {' '.join(m for m in marks if m)}"
        parts.append(Panel(Text(item.reply(c.index)[-1].content), title=title, title_align="left"))
    for who, note in state.notes:
        parts.append(Text(f"note ({who}): {note}", style="dim"))
    console.print(*parts)
    console.print(KEYS)


@app.command()
def export(
    as_: Annotated[ExportKind, typer.Option("--as", help="What to export.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="jsonl file to write.", show_default=False)],
    project: ProjectOption = Path("."),
) -> None:
    """Write the reviewed work as training data. sft: the edited replies; dpo: the chosen reply over each
    other candidate (an edit over its original when nothing was chosen); kto: thumbed replies with a
    boolean `label`. Prints how many items gave records, and why the others did not."""
    from tuneforge.review import export as export_items

    with ReviewStore.open(project) as store:
        report = export_items(store, as_, output)
    console.print(f"{report.records} {as_} records from {report.items_exported} of {report.items} items -> {output}")
    for reason, n in report.not_exported.items():
        console.print(f"  not exported {n:>6}  {reason}")


@app.command()
def stats(
    project: ProjectOption = Path("."),
    json_out: Annotated[bool, typer.Option("--json", help="Print the stats as JSON.")] = False,
) -> None:
    """Items by status, actions by reviewer, and how many items each export would use."""
    from tuneforge.review import review_stats

    with ReviewStore.open(project) as store:
        s = review_stats(store)
    if json_out:
        console.print_json(json.dumps(s.to_dict()))
        return
    console.print(f"{s.items} items, {s.candidates} candidates · "
                  + ", ".join(f"{k} {v}" for k, v in sorted(s.status.items())))
    table = Table("reviewer", *(a for a in ("edit", "choose", "thumb", "note", "skip", "done")))
    for who, counts in sorted(s.by_reviewer.items()):
        table.add_row(who, *(str(counts.get(a, 0)) for a in ("edit", "choose", "thumb", "note", "skip", "done")))
    console.print(table)
    console.print("exportable items: " + ", ".join(f"{k} {s.exportable.get(k, 0)}" for k in EXPORT_KINDS))
