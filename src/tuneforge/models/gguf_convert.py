"""GGUF → a plain safetensors HF directory, done once and cached.

transformers can load a GGUF checkpoint (de-quantising it) but cannot save that model as is, and
de-quantising takes seconds on every load. So we rebuild a plain model from the loaded state dict,
save it with the tokenizer and its chat template, and load that directory from then on.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import torch

from tuneforge.paths import cache_root


def converted_dir(gguf: Path, name: str | None = None) -> Path:
    """The cache directory for a GGUF file; keyed by name, size and mtime so a changed file re-converts."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    return cache_root() / "models" / f"{name or gguf.stem}-{key}"


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Write `out` atomically (a temp dir renamed into place), so an interrupted run leaves nothing half-made."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    config = AutoConfig.from_pretrained(gguf.parent, **kwargs)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings may be absent from the state dict; anything else missing is a real error.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"{gguf}: state dict mismatch (missing {missing[:5]}, unexpected {unexpected[:5]})")
    plain.generation_config = loaded.generation_config

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def ensure_converted(gguf: Path, name: str | None = None) -> Path:
    out = converted_dir(gguf, name)
    if not (out / "config.json").exists():
        try:
            convert_gguf(gguf, out)
        except OSError:
            if not (out / "config.json").exists():  # else another process converted it meanwhile
                raise
    return out
