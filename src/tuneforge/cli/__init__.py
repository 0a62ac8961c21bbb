"""The `tuneforge` command. Each command group lives in its own small module and only parses
arguments and calls library functions."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from tuneforge.errors import TuneforgeError

app = typer.Typer(
    name="tuneforge",
    help="Adapt open LLMs to your task: curate data, format, fine-tune, evaluate, compare, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

err_console = Console(stderr=True)


def main() -> None:
    """Console entry point: user errors become one red line and exit code 2, not a traceback."""
    try:
        app()
    except TuneforgeError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, markup=True)
        sys.exit(2)


def _register() -> None:
    from tuneforge.cli import chat, curate, data, data_show, doctor, models, quickstart, train

    data.app.command()(data_show.show)
    data.app.command()(curate.curate)
    data.app.command()(curate.report)
    app.add_typer(data.app, name="data")
    app.command()(quickstart.quickstart)
    app.command()(train.train)
    app.command()(train.runs)
    app.command()(doctor.doctor)
    app.command()(models.models)
    app.command()(chat.chat)


_register()
