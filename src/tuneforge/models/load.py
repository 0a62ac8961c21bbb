"""Resolve a model reference to a local directory and load it with the right dtype and device."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tuneforge.config import ModelConfig
from tuneforge.errors import MissingDependency, TuneforgeError
from tuneforge.models.aliases import ALIASES
from tuneforge.models.gguf_convert import ensure_converted

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def resolve_model_path(name_or_path: str) -> str:
    """An alias or a .gguf file becomes a converted local directory; a directory stays as it is;
    anything else is taken as a hub id, looked up in the local HF cache."""
    if name_or_path in ALIASES:
        alias = ALIASES[name_or_path]
        return str(ensure_converted(alias.gguf_path(), alias.name))
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise TuneforgeError(f"{path}: no such GGUF file")
        return str(ensure_converted(path))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise TuneforgeError(f"{path}: not a model directory (no config.json)")
        return str(path)
    if path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise TuneforgeError(f"{name_or_path}: not a model directory, .gguf file or alias "
                             f"({', '.join(ALIASES)})")
    return name_or_path  # hub id


def _hub_kwargs(cfg: ModelConfig) -> dict:
    # Offline unless the user allows downloads: a hub id must already be in the local HF cache.
    offline = not cfg.allow_download or os.environ.get("HF_HUB_OFFLINE") == "1"
    return {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code, "local_files_only": offline}


def _not_cached(name: str, err: Exception) -> TuneforgeError:
    return TuneforgeError(
        f"cannot load '{name}' offline: it is not a local directory, a .gguf file, an alias "
        f"({', '.join(ALIASES)}) or a model in the local Hugging Face cache. Download it first "
        f"(`huggingface-cli download {name}`) or set model.allow_download=true. ({type(err).__name__})")


def load_tokenizer(name_or_path: str | ModelConfig) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    cfg = name_or_path if isinstance(name_or_path, ModelConfig) else ModelConfig(name_or_path=name_or_path)
    path = resolve_model_path(cfg.name_or_path)
    try:
        return AutoTokenizer.from_pretrained(path, **_hub_kwargs(cfg))
    except OSError as e:
        raise _not_cached(cfg.name_or_path, e) from e


def pick_device(requested: str = "auto") -> torch.device:
    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise TuneforgeError(f"device '{requested}' requested but CUDA is not available here")
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    """fp32 on CPU (bf16 matmuls are slow on most CPUs), bf16 on CUDA where supported, else fp16."""
    if requested != "auto":
        return getattr(torch, requested)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _quantization(cfg: ModelConfig, device: torch.device, dtype: torch.dtype) -> dict:
    if cfg.quantization == "none":
        return {}
    if device.type != "cuda":
        raise TuneforgeError(f"model.quantization={cfg.quantization} needs a CUDA GPU (bitsandbytes); "
                             f"this run is on {device.type}. Use quantization=none on CPU.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MissingDependency("bitsandbytes", "quant", "4-bit / 8-bit loading") from None
    from transformers import BitsAndBytesConfig

    if cfg.quantization == "8bit":
        bnb = BitsAndBytesConfig(load_in_8bit=True)
    else:
        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                 bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
    return {"quantization_config": bnb, "device_map": {"": device.index or 0}}


def load_model(cfg: ModelConfig | str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer, on the configured device and dtype, in eval mode."""
    from transformers import AutoModelForCausalLM

    if isinstance(cfg, str):
        cfg = ModelConfig(name_or_path=cfg)
    device = pick_device(cfg.device)
    dtype = pick_dtype(cfg.dtype, device)
    path = resolve_model_path(cfg.name_or_path)
    quant = _quantization(cfg, device, dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **quant, **_hub_kwargs(cfg))
    except OSError as e:
        raise _not_cached(cfg.name_or_path, e) from e
    if not quant:
        model.to(device)
    model.eval()
    return model, load_tokenizer(cfg)
