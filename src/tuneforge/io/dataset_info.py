"""Entries of a LLaMA-Factory `dataset_info.json`, so existing datasets work unchanged.

`path: data/dataset_info.json#identity` reads the entry `identity`: its `file_name` (relative to
the info file), `formatting`, `columns` and `tags`, translated to our names. Settings written in
our own config win over the entry's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneforge.config import DatasetConfig
from tuneforge.errors import DataError

# LLaMA-Factory column names -> ours, per formatting (kto_tag is the KTO `label`, see io.kto). Media
# columns (images, videos, audios) have no counterpart; they stay in meta["extra"], nothing is dropped.
_COLUMNS = {
    "alpaca": {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
               "system": "system", "tools": "tools", "chosen": "chosen", "rejected": "rejected",
               "kto_tag": "label"},
    "sharegpt": {"messages": "conversations", "system": "system", "tools": "tools",
                 "chosen": "chosen", "rejected": "rejected", "kto_tag": "label"},
}
_REMOTE = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")


def is_entry_path(path: str) -> bool:
    return "#" in path and path.split("#", 1)[0].endswith(".json")


def resolve_entry(path: str, dataset: DatasetConfig) -> DatasetConfig:
    """The dataset config for `info.json#name`, with the entry's settings under the user's own."""
    info_path, name = path.rsplit("#", 1)
    try:
        info = json.loads(Path(info_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(info_path, "no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(info_path, f"not a valid dataset_info.json ({e})") from None
    except RecursionError:
        raise DataError(info_path, "not a valid dataset_info.json (nested too deeply)") from None
    if not isinstance(info, dict) or name not in info:
        names = ", ".join(sorted(info)) if isinstance(info, dict) else "none"
        raise DataError(info_path, f"no dataset named '{name}' (it has: {names})")
    entry: dict[str, Any] = info[name]
    remote = [key for key in _REMOTE if key in entry]
    if "file_name" not in entry:
        why = f"loads from {remote[0]} ({entry[remote[0]]}), which tuneforge does not fetch" if remote else \
            "has no file_name"
        raise DataError(f"{info_path}#{name}", f"the entry {why}; download the data and set file_name")
    formatting = entry.get("formatting", "alpaca")
    if formatting not in _COLUMNS:
        raise DataError(f"{info_path}#{name}", f"unknown formatting '{formatting}' (alpaca or sharegpt)")
    columns = {_COLUMNS[formatting][k]: v for k, v in (entry.get("columns") or {}).items()
               if k in _COLUMNS[formatting]}
    fmt = formatting
    if formatting == "alpaca" and set(columns) == {"instruction"}:
        # LLaMA-Factory's pre-training entries map only `prompt` (c4_demo: {"prompt": "text"}).
        fmt, columns = "text", {"text": columns["instruction"]}
    elif "columns" not in entry and "formatting" not in entry:
        fmt = "auto"  # e.g. a .txt file with no columns: LLaMA-Factory reads its `text` column
    return DatasetConfig(
        path=str(Path(info_path).parent / entry["file_name"]),
        format=dataset.format if dataset.format != "auto" else fmt,
        columns={**columns, **dataset.columns},
        tags={**(entry.get("tags") or {}), **dataset.tags},
        task=dataset.task,
        split=dataset.split or entry.get("split"),
    )
