"""A curation recipe: inputs, the ordered operators, the output and how to execute. YAML fills it;
unknown keys are errors that name the key."""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from tuneforge.curate.base import OpConfig, parse_op
from tuneforge.curate.pipeline import OUTPUT, READ_REJECTS, RunOptions, run
from tuneforge.errors import ConfigError
from tuneforge.io.report import ReadReport
from tuneforge.settings import explain_validation, read_yaml
from tuneforge.types import Sample

REPORT = "report.html"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(_Strict):
    path: Path
    format: str = "auto"
    """Reader format (alpaca, sharegpt, messages, text, preference, tuneforge) or `auto`."""
    on_error: Literal["raise", "skip"] = "raise"
    """A record the reader cannot take (malformed JSON, a missing field): `raise` stops the run with
    file:line; `skip` counts it under `rejected` in stats.json and writes it to `read_rejects.jsonl`,
    as `data.on_error` does for training data."""


class OutputSpec(_Strict):
    dir: Path
    format: Literal["jsonl", "json", "parquet"] = "jsonl"
    """File kind of an extra copy of the kept records besides the canonical `data.jsonl`."""
    rejects: bool = True
    report: bool = True
    """Write `report.html` with diagnostics of the kept records."""


class ExecutorSpec(_Strict):
    kind: Literal["local", "ray"] = "local"
    """`local`: worker processes on this machine; `ray`: Ray Data on a Ray cluster, with the same
    output (`pip install 'tuneforge[ray]'`). `executor: ray` alone is short for `{kind: ray}`."""
    workers: int = 1
    """Worker processes of the local executor (Ray uses every CPU of its cluster)."""
    shard_size: int = 5000
    resume: bool = True
    """Skip shards a previous run of the same recipe finished (their `.done` markers); local executor only."""
    address: str | None = None
    """The Ray cluster to run on, as `ray.init(address=...)` takes it: `auto` (the cluster this machine
    belongs to) or `ray://HEAD:10001`; unset: a Ray started on this machine for the run."""

    @model_validator(mode="after")
    def _check(self) -> ExecutorSpec:
        if self.address is not None and self.kind != "ray":
            raise ValueError("`address` is the Ray cluster's: set `kind: ray` too")
        return self


class Recipe(_Strict):
    inputs: list[InputSpec]
    output: OutputSpec
    executor: ExecutorSpec = ExecutorSpec()
    operators: list[OpConfig]

    @field_validator("executor", mode="before")
    @classmethod
    def _executor(cls, raw: Any) -> Any:
        return {"kind": raw} if isinstance(raw, str) else raw

    @field_validator("operators", mode="before")
    @classmethod
    def _ops(cls, raw: Any) -> list[OpConfig]:
        if not isinstance(raw, list):
            raise ValueError("a list of operators, each with an `op:` key")
        return [parse_op(r, f"operators[{i}]") for i, r in enumerate(raw)]


def load_recipe(path: Path | str, base: Path | None = None) -> Recipe:
    """Read a recipe; relative input and output paths are relative to the recipe file's folder
    (or `base`)."""
    path = Path(path)
    try:
        raw = read_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: {e}") from None
    return parse_recipe(raw, base or path.parent, str(path))


def parse_recipe(raw: dict[str, Any], base: Path, where: str = "recipe") -> Recipe:
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{where}: {explain_validation(e, Recipe)}") from None
    # One rule for every tuneforge YAML (see tuneforge.config.load_config): `~` is the home folder, and
    # a relative path is relative to the file's folder.
    for spec in recipe.inputs:
        spec.path = base / spec.path.expanduser()
    recipe.output.dir = base / recipe.output.dir.expanduser()
    return recipe




def read_dataset(path: Path | str, format: str = "auto", columns: dict[str, str] | None = None,
                 on_error: Literal["raise", "skip"] = "raise", report: ReadReport | None = None) -> Iterator[Sample]:
    """Stream one dataset (file, folder or glob) through tuneforge.io's readers; `columns` maps our
    field names to the file's. With `on_error="skip"` bad records are counted in `report`."""
    from tuneforge.config import DatasetConfig
    from tuneforge.io import iter_samples

    try:
        dataset = DatasetConfig(path=str(path), format=format, columns=columns or {})
    except ValidationError as e:
        raise ConfigError(f"{path}: format: {e.errors()[0]['msg']}") from None
    return iter_samples(dataset, on_error=on_error, report=report)


def iter_inputs(recipe: Recipe, report: ReadReport | None = None) -> Iterator[Sample]:
    """Every input of the recipe, in order, bad records counted in `report`. All are checked first:
    a missing one is an error naming its key before any record is read."""
    for i, spec in enumerate(recipe.inputs):
        path = str(spec.path)
        if not (glob.glob(path, recursive=True) if any(c in path for c in "*?[") else spec.path.exists()):
            raise ConfigError(f"inputs.{i}.path: {path}: no such file or directory; relative paths in a recipe "
                              "are relative to the recipe file's own folder")
    return (sample for spec in recipe.inputs
            for sample in read_dataset(spec.path, spec.format, on_error=spec.on_error, report=report))


def read_output(out_dir: Path) -> Iterator[Sample]:
    """The kept records of a finished run (the canonical jsonl the runner writes)."""
    with (out_dir / OUTPUT).open(encoding="utf-8") as f:
        for line in f:
            yield Sample.from_dict(json.loads(line))


def curate(recipe: Recipe, samples: Iterable[Sample] | None = None, workers: int | None = None,
           resume: bool | None = None) -> dict[str, Any]:
    """Run a recipe end to end: kept records, rejects (of the operators, and of the readers), stats and
    (unless disabled) report.html.
    `samples` replaces the recipe's inputs (for callers that already hold them)."""
    ex = recipe.executor
    opts = RunOptions(workers=workers or ex.workers, shard_size=ex.shard_size,
                      write_rejects=recipe.output.rejects, resume=ex.resume if resume is None else resume)
    out = recipe.output.dir
    # The inputs are read again on resume, so the read's counts and rejects are rebuilt whole each run.
    read = None if samples is not None else ReadReport(
        rejects_path=out / READ_REJECTS if recipe.output.rejects else None, atomic=True)
    source = iter_inputs(recipe, read) if samples is None else samples
    try:
        if ex.kind == "ray":
            from tuneforge.curate.ray_executor import run as run_on_ray

            stats = run_on_ray(source, recipe.operators, out, opts, ex.address, read)
        else:
            stats = run(source, recipe.operators, out, opts, read)
    except BaseException:
        if read is not None:
            read.discard()
        raise
    if recipe.output.format != "jsonl":
        from tuneforge.io import write_samples

        write_samples(read_output(out), out / f"data.{recipe.output.format}")
    if recipe.output.report:
        from tuneforge.curate.report import diagnose, render_html

        (out / REPORT).write_text(render_html(diagnose(read_output(out), languages=False), stats), encoding="utf-8")
    return stats
