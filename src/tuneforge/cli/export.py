"""`tuneforge export`: a trained artefact as a merged HF model directory or a clean adapter directory,
optionally also as GGUF files with an Ollama Modelfile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneforge.config import DEFAULT_MODEL


def export(
    adapter: Annotated[str, typer.Option(
        help="A trained artefact of any method (a run directory or its final/).")],
    out: Annotated[Path, typer.Option(help="New directory to write.")],
    model: Annotated[str, typer.Option("--model", "-m", help="The base the artefact was trained on.")] = DEFAULT_MODEL,
    merge: Annotated[bool, typer.Option(
        help="Merge LoRA / DoRA / IA3 into the base weights (else: the adapter).")] = False,
    dtype: Annotated[str, typer.Option(help="Saved dtype of a merged model: auto (the base's), float32, bfloat16, "
                                            "float16. Merging itself is always done in float32.")] = "auto",
    gguf: Annotated[list[str] | None, typer.Option(
        metavar="TYPE",
        help="Also write OUT/gguf/model-TYPE.gguf for llama.cpp / Ollama, TYPE f16 or q8_0 (repeat the option "
             "or comma-separate), and an Ollama Modelfile (FROM the first TYPE). Needs a merged model: "
             "--merge, or a full fine-tune. Llama-architecture models only.")] = None,
    template: Annotated[str | None, typer.Option(
        help="Chat template the Modelfile renders and the GGUF carries (auto or a built-in name); default: "
             "the one the run trained with (its config.yaml), else auto.")] = None,
) -> None:
    """Export for transformers, vLLM and others, with the tokenizer and chat template; a parity check
    (the reloaded export vs the adapted model) is printed. With --gguf, also GGUF files and an Ollama
    Modelfile, each GGUF reloaded through transformers and compared with the merged model."""
    from tuneforge.config import TemplateConfig
    from tuneforge.export import check_gguf_request, export_gguf, parse_gguf_types
    from tuneforge.export import export as run_export
    from tuneforge.methods.artefact import trained_template

    gguf_types = parse_gguf_types(gguf or [])
    if gguf_types:
        check_gguf_request(model, Path(adapter), merge)  # before anything is written
    typer.echo(str(run_export(model, adapter, out, merge=merge, dtype=dtype)))
    if gguf_types:
        chat = TemplateConfig(name=template) if template else trained_template(adapter) or TemplateConfig()
        typer.echo(str(export_gguf(out, gguf_types, template=chat)))
