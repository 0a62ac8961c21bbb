"""`tuneforge ui`: the local web workbench."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tuneforge.config import DEFAULT_MODEL


def ui(
    host: Annotated[str, typer.Option(help="Interface to bind; anything but loopback needs the token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 7860,
    root: Annotated[Path, typer.Option(
        help="The project folder: the workbench reads and writes files only under it (and --folder).")] = Path("."),
    folder: Annotated[Optional[list[Path]], typer.Option(
        help="A further folder the workbench may read (datasets kept elsewhere); repeatable.")] = None,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Base model of the playground and tokenizer of the Data page.")] = DEFAULT_MODEL,
    token: Annotated[Optional[str], typer.Option(
        help="Access token (default: a random one, printed in the URL); $TUNEFORGE_UI_TOKEN also works.",
        envvar="TUNEFORGE_UI_TOKEN")] = None,
    no_token: Annotated[bool, typer.Option(
        "--no-token", help="No access token (loopback only: refused on any other address).")] = False,
    max_upload_kb: Annotated[int, typer.Option(min=1, help="Largest upload accepted (413 beyond).")] = 1024,
) -> None:
    """Open the workbench: data, review, train, runs, playground and compare pages in the browser.
    Training and comparisons run as `tuneforge` subprocesses that outlive the page and the server."""
    from tuneforge.ui.serve import serve_ui

    serve_ui(host=host, port=port, root=root, folders=folder or [], model=model,
             token=None if no_token else token, random_token=not no_token, max_upload_bytes=max_upload_kb * 1024)
