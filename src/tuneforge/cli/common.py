"""What several commands share: building a config from a YAML file or from data paths plus flags, and
the options that say how to read data files (`--format`, `--column`), parsed once for every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from tuneforge.config import Config, build_config, load_config
from tuneforge.io import FORMATS

# Choices built from the registry, so a new format shows up in --help by itself.
InputFormat = Literal[("auto", *FORMATS)]  # type: ignore[valid-type]

FormatOption = Annotated[InputFormat, typer.Option(
    "--format", "-f", help="Input format; `auto` tells it from the first record of each file.")]
ThreadsOption = Annotated[Optional[int], typer.Option(
    "--threads", min=1, show_default=False,
    help="Torch CPU threads. Default: the cores that other processes leave free when the command starts "
         "(threads waiting on cores others hold slow every step); also $TUNEFORGE_THREADS.")]
ColumnOption = Annotated[Optional[list[str]], typer.Option(
    "--column", metavar="FIELD=COLUMN", show_default=False,
    help="Read our FIELD from the file's COLUMN, e.g. output=answer; repeatable.")]


def pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """`NAME=VALUE` options (`--column output=answer`) as a dict; a malformed one is a usage error."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=option)
        out[key] = value
    return out


def config_from(config_or_data: list[str], *, model: str | None = None, template: str | None = None,
                cutoff: int | None = None, overrides: list[str] = (), format: str = "auto",
                columns: dict[str, str] | None = None) -> Config:
    """`tuneforge CMD run.yaml` or `tuneforge CMD data.json more/*.jsonl`; flags win over the file.
    `format` (unless `auto`) and `columns` apply to every dataset: each data path, or each entry of
    the YAML's `data.datasets` (columns merged over the entry's own)."""
    flags = [f"model.name_or_path={model}"] if model else []
    flags += [f"template.name={template}"] if template else []
    flags += [f"template.cutoff_len={cutoff}"] if cutoff else []
    first = config_or_data[0]
    if len(config_or_data) == 1 and Path(first).suffix in (".yaml", ".yml"):
        cfg = load_config(first, [*flags, *overrides])
    else:
        cfg = build_config({"data": list(config_or_data)}, [*flags, *overrides])
    for dataset in cfg.data.datasets:
        if format != "auto":
            dataset.format = format
        if columns:
            dataset.columns = {**dataset.columns, **columns}
    return cfg
