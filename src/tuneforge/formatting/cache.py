"""The on-disk cache of tokenised datasets: safetensors arrays plus JSON metadata, never pickle.

The key hashes everything that changes the result: the samples (canonical JSON), the tokenizer
(its serialised vocabulary, merges, normaliser and special tokens, and its chat template), the
template's fingerprint, every template option (train_on, cutoff, system, ...) and `FORMAT`.

The cache holds at most `TUNEFORGE_TOKEN_CACHE_MB` megabytes (default 4096): after each write the
least recently used entries go first (a read refreshes an entry's time).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from tuneforge.formatting.encode import Encoder
from tuneforge.paths import cache_root
from tuneforge.types import Sample

FORMAT = 4
"""Bump when encoding or storage changes, so stale entries are never read (3: per-turn loss weights
encoded, with an optional float32 `weights` column; 4: an opening assistant turn is context, and the
stats count reply-truncated samples)."""
DEFAULT_LIMIT_MB = 4096


def tokenizer_fingerprint(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    extra = {"class": type(tokenizer).__name__, "chat_template": tokenizer.chat_template,
             "special": [tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token]}
    h = hashlib.sha256(body.encode())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def cache_key(samples: Sequence[Sample], encoder: Encoder) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "template": encoder.template.fingerprint,
                         "options": encoder.cfg.model_dump(mode="json"),
                         "tokenizer": tokenizer_fingerprint(encoder.tokenizer)}, sort_keys=True).encode())
    for s in samples:
        h.update(json.dumps(s.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def entry_path(cache_dir: str | Path | None, key: str) -> Path:
    if cache_dir is None:
        cache_dir = cache_root() / "tokenized"
    root = Path(cache_dir)
    return root / f"{key[:32]}.safetensors"


def save(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    save_file(arrays, str(tmp), metadata={"tuneforge": json.dumps(meta, ensure_ascii=False)})
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old entry or the whole new one
    evict(path.parent, keep=path)


def limit_bytes() -> int:
    return int(float(os.environ.get("TUNEFORGE_TOKEN_CACHE_MB", DEFAULT_LIMIT_MB)) * 2**20)


def evict(root: Path, keep: Path | None = None, limit: int | None = None) -> list[Path]:
    """Delete least recently used entries until the cache fits `limit` bytes; never `keep` (the entry
    just written). Returns the deleted paths."""
    limit = limit_bytes() if limit is None else limit
    entries = []
    for p in root.glob("*.safetensors"):
        try:
            st = p.stat()
        except FileNotFoundError:  # another process evicted it meanwhile
            continue
        entries.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, p in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if p == keep:
            continue
        p.unlink(missing_ok=True)
        total -= size
        removed.append(p)
    return removed


def load(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    os.utime(path)  # recently used: the last to be evicted
    with safe_open(str(path), framework="np") as f:
        meta = json.loads(f.metadata()["tuneforge"])
        return {k: f.get_tensor(k) for k in f.keys()}, meta
