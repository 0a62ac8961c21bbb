"""`tuneforge export`: a trained artefact as a merged HF model directory or a clean adapter directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneforge.config import DEFAULT_MODEL


def export(
    adapter: Annotated[str, typer.Option(help="A trained artefact directory (a run's final/).")],
    out: Annotated[Path, typer.Option(help="New directory to write.")],
    model: Annotated[str, typer.Option("--model", "-m", help="The base the artefact was trained on.")] = DEFAULT_MODEL,
    merge: Annotated[bool, typer.Option(help="Merge LoRA / DoRA / IA3 into the base weights (else: the adapter).")] = False,
    dtype: Annotated[str, typer.Option(help="Saved dtype of a merged model: auto (the base's), float32, bfloat16, "
                                            "float16. Merging itself is always done in float32.")] = "auto",
) -> None:
    """Export for transformers, vLLM and others, with the tokenizer and chat template; a parity check
    (the reloaded export vs the adapted model) is printed."""
    from tuneforge.serve.export import export as run_export

    typer.echo(str(run_export(model, adapter, out, merge=merge, dtype=dtype)))
