"""`tuneforge data ...`: convert, show (and curate / report)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Read, convert and inspect datasets.", no_args_is_help=True)
