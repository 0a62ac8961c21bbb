"""`tuneforge data from-feedback`: a data set from the ratings and corrections a recording server took."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

console = Console()

SKIP_REASONS = {
    "no_feedback": "replies nobody rated",
    "no_correction": "rated, but without a correction",
    "correction_same_as_reply": "the correction repeats the reply",
}


def from_feedback(
    directory: Annotated[Path, typer.Argument(
        show_default=False, metavar="DIR", help="The directory `tuneforge serve --record DIR` recorded into.")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", show_default=False,
        help="Output file: .jsonl (kto), or .jsonl, .json, .parquet, .jsonl.gz, .json.gz (dpo, sft).")],
    kind: Annotated[Literal["kto", "dpo", "sft"], typer.Option(
        "--as", help="kto: each rated reply with label true (up) / false (down); dpo: each correction as "
                     "chosen against the original reply as rejected; sft: each conversation with its "
                     "corrected reply.")],
) -> None:
    """Build a KTO, DPO or SFT data set from recorded chats and their feedback. Where one reply got
    several feedbacks, the latest counts. Prints what was exported and what was skipped, by reason."""
    from tuneforge.serve.record import export_feedback

    report = export_feedback(directory, kind, output)
    table = Table(title=f"data from-feedback --as {kind}", show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("recorded replies", str(report.replies), "")
    table.add_row("feedback", str(report.feedback),
                  f"{report.superseded} replaced by a later one for the same reply" if report.superseded else "")
    for reason, n in report.skipped.most_common():
        table.add_row("[yellow]skipped[/]", str(n), f"{reason}: {SKIP_REASONS.get(reason, reason)}")
    labels = ", ".join(f"{n} {label}" for label, n in sorted(report.labels.items()))
    table.add_row("written", str(report.written), f"records to {output}" + (f" ({labels})" if labels else ""))
    console.print(table)
    if kind == "kto" and report.written and len(report.labels) < 2:
        console.print("[yellow]warning:[/] every record has the same label; KTO needs both desirable and "
                      "undesirable examples")
