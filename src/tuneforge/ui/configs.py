"""The Train and Compare pages' configs: found under the root, edited as YAML text, validated with the
same messages as the CLI (`tuneforge.config`: the key, the closest valid one), saved for a job."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from tuneforge.config import Config, build_config, check_inputs, resolve_paths
from tuneforge.errors import ConfigError
from tuneforge.settings import read_yaml

MAX_CONFIGS = 200


def find_configs(root: Path) -> list[Path]:
    """YAML files under the root that have a model / data / train / eval section, hidden folders skipped."""
    found = []
    for path in sorted(root.glob("**/*.y*ml")):
        if any(part.startswith(".") for part in path.relative_to(root).parts) or path.suffix not in (".yaml", ".yml"):
            continue
        try:
            tree = read_yaml(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            continue
        if isinstance(tree, dict) and {"model", "data", "train", "eval"} & tree.keys():
            found.append(path)
        if len(found) >= MAX_CONFIGS:
            break
    return found


def validate(text: str, base: Path) -> Config:
    """`load_config` on text: relative paths are relative to `base` (the file's folder), inputs must exist."""
    try:
        tree = read_yaml(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}") from None
    if not isinstance(tree, dict):
        raise ConfigError("expected a mapping of sections at the top level")
    cfg = build_config(tree)
    written = resolve_paths(cfg, base)
    check_inputs(cfg, written)
    return cfg


def save_for_job(cfg: Config, folder: Path, name: str) -> Path:
    """The validated config, paths made absolute, as the job's own file: the source stays untouched and a
    resumed run reads exactly what it started with."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(name).stem}.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_unset=True), sort_keys=False,
                                   allow_unicode=True), encoding="utf-8")
    return path
