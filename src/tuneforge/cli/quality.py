"""`tuneforge data fit-quality LABELLED... -o DIR`: fit the quality model a recipe's `quality_model`
operator filters with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from tuneforge.constants import EMBEDDING_MODEL

console = Console(highlight=False)


def fit_quality(
    data: Annotated[list[str], typer.Argument(
        help="Labelled datasets (any format tuneforge reads): each record labelled good or bad in `label` "
             "(or --label-key), or scored by llm_score (with --min-score).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.", show_default=False)],
    label_key: Annotated[str, typer.Option(help="The record's label field: true/false, good/bad, 1/0.")] = "label",
    min_score: Annotated[Optional[float], typer.Option(
        help="Label by llm_score instead: good when meta.llm_score.mean is at least this.")] = None,
    test_fraction: Annotated[float, typer.Option(help="Share of the records held out to measure the model.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
    embedding: Annotated[str, typer.Option(
        help="Sentence-transformers model (default: the bundled MiniLM, offline).")] = EMBEDDING_MODEL,
) -> None:
    """Fit a light quality classifier (MiniLM embeddings + logistic regression) on labelled records,
    report held-out precision, recall and AUC, and save it (JSON + safetensors) for `op: quality_model`."""
    from tuneforge.cli.progress import TaskProgress
    from tuneforge.curate.quality_model import fit_quality_model, labels_of
    from tuneforge.io import read_samples

    samples = []
    for path in data:
        samples.extend(read_samples(path)[0])
    labelled, labels, counts = labels_of(samples, label_key, min_score)
    console.print(f"{len(samples)} records: {counts.good} good, {counts.bad} bad, {counts.unlabelled} unlabelled "
                  "(left out)")
    with TaskProgress(console) as progress:
        model = fit_quality_model(labelled, labels, test_fraction=test_fraction, seed=seed, embedding=embedding,
                                  on_progress=progress)
    model.save(output)
    m = model.metrics
    table = Table("held out", "precision", "recall", "AUC", "accuracy")
    table.add_row(f"{m['test']} records ({m['test_good']} good)", f"{m['precision']:.3f}", f"{m['recall']:.3f}",
                  f"{m['auc']:.3f}", f"{m['accuracy']:.3f}")
    console.print(table)
    console.print(f"trained on {m['train']} records -> {output} · use it in a recipe: "
                  f"{{op: quality_model, path: {output}}}")
