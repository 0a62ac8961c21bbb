"""LLaMA-Factory v1 dataset descriptors: a YAML file naming datasets, as `data/v1_sft_demo.yaml` does.

    identity:                      # a dataset's name
      path: data/identity.json     # or file_name (+ dataset_dir), LLaMA-Factory's older spelling
      source: local                # only local files: tuneforge does not fetch from a hub
      converter: alpaca            # alpaca | sharegpt | pair; none: v1 messages (auto-detected)
      split: train                 # for HF dataset directories holding several splits

`path: descriptor.yaml#identity` reads one entry; `path: descriptor.yaml` reads every entry in order.
A relative path is looked up beside the YAML file first, then from the current directory (where
LLaMA-Factory resolves it). Settings written in our own dataset config win over the entry's. What
tuneforge does not do is an error naming the key: remote sources, streaming, and `size` / `weight` /
`num_samples` resampling (tuneforge mixes datasets with `data.mix` and `datasets[].weight`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tuneforge.config import DatasetConfig
from tuneforge.errors import DataError

SUFFIXES = (".yaml", ".yml")
CONVERTERS = {"alpaca": "alpaca", "sharegpt": "sharegpt", "pair": "preference"}
"""LLaMA-Factory v1 converter -> the tuneforge format that reads the same records."""
_KNOWN = {"path", "file_name", "dataset_dir", "source", "converter", "split"}
_UNSUPPORTED = {
    "size": "resampling to a size is not supported; use data.mix: weights with datasets[].weight",
    "num_samples": "resampling to a size is not supported; use data.mix: weights with datasets[].weight",
    "weight": "v1 weights resample the index; use data.mix: weights with datasets[].weight instead",
    "streaming": "streaming datasets are not supported; tuneforge reads local files whole",
    "subset": "HF Hub subsets are not supported; download the data and give its local path",
}


def is_descriptor(path: str) -> bool:
    """`x.yaml` or `x.yaml#name`."""
    return path.split("#", 1)[0].endswith(SUFFIXES)


def resolve_entries(path: str, dataset: DatasetConfig) -> list[DatasetConfig]:
    """The dataset config of each entry `path` names (one for `#name`, else all), the user's settings
    over the entry's."""
    file, _, name = path.partition("#")
    entries = _load(file)
    if name:
        if name not in entries:
            raise DataError(file, f"no dataset named '{name}' (it has: {', '.join(entries) or 'none'})")
        entries = {name: entries[name]}
    return [_entry(file, n, e, dataset) for n, e in entries.items()]


def _load(file: str) -> dict[str, Any]:
    try:
        info = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(file, "no such file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DataError(file, f"not a valid dataset YAML ({e})") from None
    if not isinstance(info, dict) or not all(isinstance(e, dict) for e in info.values()):
        raise DataError(file, "not a LLaMA-Factory v1 dataset YAML: expected a mapping of dataset names to "
                              "settings (path, converter, ...)")
    return {str(k): v for k, v in info.items()}


def _entry(file: str, name: str, entry: dict[str, Any], dataset: DatasetConfig) -> DatasetConfig:
    where = f"{file}#{name}"
    for key in entry:
        if key in _UNSUPPORTED and not (key == "streaming" and not entry[key]):
            raise DataError(where, f"'{key}': {_UNSUPPORTED[key]}")
        if key not in _KNOWN and key not in _UNSUPPORTED:
            raise DataError(where, f"unknown key '{key}' (tuneforge reads {', '.join(sorted(_KNOWN))})")
    source = entry.get("source")
    if source not in (None, "local"):
        raise DataError(where, f"source '{source}': tuneforge reads local files only; download the data "
                               "and set path to it with source: local")
    data = entry.get("path", entry.get("file_name"))
    if not isinstance(data, str) or not data:
        raise DataError(where, "the entry has no path (or file_name)")
    if "dataset_dir" in entry and "path" not in entry:
        data = str(Path(str(entry["dataset_dir"])) / data)
    converter = entry.get("converter")
    if converter is not None and converter not in CONVERTERS:
        raise DataError(where, f"unknown converter '{converter}' ({', '.join(CONVERTERS)}; none for v1 messages)")
    return dataset.model_copy(update={
        "path": _locate(where, file, data, hub_like=source is None),
        "format": dataset.format if dataset.format != "auto" else CONVERTERS.get(converter or "", "auto"),
        "split": dataset.split or entry.get("split"),
    })


def _locate(where: str, file: str, data: str, hub_like: bool) -> str:
    given = Path(data).expanduser()
    candidates = [given] if given.is_absolute() else [Path(file).parent / given, given]
    for c in candidates:
        if c.exists():
            return str(c)
    tried = " or ".join(str(c) for c in candidates)
    hint = " (without source: local, LLaMA-Factory would take it for a Hugging Face Hub id, which tuneforge " \
           "does not fetch)" if hub_like else ""
    raise DataError(where, f"{data}: no such file or directory (looked for {tried}){hint}")
