"""What several commands share: building a config from a YAML file or from data paths plus flags."""

from __future__ import annotations

from pathlib import Path

from tuneforge.config import Config, build_config, load_config


def config_from(config_or_data: list[str], *, model: str | None = None, template: str | None = None,
                cutoff: int | None = None, overrides: list[str] = ()) -> Config:
    """`tuneforge CMD run.yaml` or `tuneforge CMD data.json more/*.jsonl`; flags win over the file."""
    flags = [f"model.name_or_path={model}"] if model else []
    flags += [f"template.name={template}"] if template else []
    flags += [f"template.cutoff_len={cutoff}"] if cutoff else []
    first = config_or_data[0]
    if len(config_or_data) == 1 and Path(first).suffix in (".yaml", ".yml"):
        return load_config(first, [*flags, *overrides])
    return build_config({"data": list(config_or_data)}, [*flags, *overrides])
