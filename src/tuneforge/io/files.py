"""Which files a dataset path names: files, folders, globs, HF `save_to_disk` directories."""

from __future__ import annotations

import glob
from pathlib import Path

from tuneforge.errors import DataError

# File kinds we read, by suffix (after an optional `.gz`).
KINDS = (".json", ".jsonl", ".ndjson", ".csv", ".parquet", ".txt")
# Files inside a data folder that describe the data rather than hold it.
NOT_DATA = {"dataset_info.json", "dataset_dict.json", "state.json"}


def file_kind(path: Path) -> str:
    """`.jsonl`, `.csv`, ... for a data file (gzip or not); `hf` for a `save_to_disk` directory."""
    if is_hf_dataset_dir(path):
        return "hf"
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = Path(name).suffix
    if suffix not in KINDS:
        raise DataError(str(path), f"unsupported file kind '{suffix or path.name}'; "
                                   f"supported: {', '.join(KINDS)} (optionally .gz), or a HF datasets directory")
    return ".jsonl" if suffix == ".ndjson" else suffix


def is_gzip(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def is_hf_dataset_dir(path: Path) -> bool:
    # `Dataset.save_to_disk` writes state.json, `DatasetDict.save_to_disk` writes dataset_dict.json.
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def expand(path: str) -> list[Path]:
    """The data files (or HF dataset directories) one path names, in a stable order."""
    if any(ch in path for ch in "*?["):
        matches = [Path(p) for p in sorted(glob.glob(path, recursive=True))]
        found = [p for q in matches for p in _in_folder_or_file(q)]
        if not found:
            raise DataError(path, "no data files match this pattern")
        return found
    p = Path(path)
    if not p.exists():
        raise DataError(path, "no such file or directory")
    found = _in_folder_or_file(p)
    if not found:
        raise DataError(path, f"the folder holds no data files ({', '.join(KINDS)})")
    return found


def _in_folder_or_file(p: Path) -> list[Path]:
    if not p.is_dir() or is_hf_dataset_dir(p):
        return [p]
    return [f for f in sorted(p.rglob("*"))
            if f.is_file() and not _hidden(f, p) and f.name not in NOT_DATA and _is_data_file(f)]


def _hidden(f: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in f.relative_to(root).parts)


def _is_data_file(f: Path) -> bool:
    name = f.name.lower().removesuffix(".gz")
    return Path(name).suffix in KINDS
