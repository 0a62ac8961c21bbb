"""Resolve a model reference to a local directory and load it with the right dtype and device."""

from __future__ import annotations

import difflib
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


def resolve_model_path(name_or_path: str, *, allow_download: bool = False, revision: str | None = None) -> str:
    """The one way every command turns `--model` / `model.name_or_path` into something to load: an alias
    or a .gguf file becomes a converted local directory; a directory stays as it is; anything else is a
    hub id, found in the local Hugging Face cache without touching the network unless downloads are
    allowed (then the hub id itself is returned for `from_pretrained` to fetch)."""
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
    if allow_download and not _hub_offline():
        return name_or_path
    return _cached_snapshot(name_or_path, revision)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _cached_snapshot(repo_id: str, revision: str | None) -> str:
    """The local snapshot of a hub model, looked up on disk only. transformers' own `local_files_only`
    still asks the hub about adapter files (retrying for about a minute offline), so the loaders are
    handed this directory instead of the id."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, revision=revision, cache_dir=constants.HF_HUB_CACHE, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        raise UnknownModel(repo_id) from None


class UnknownModel(TuneforgeError):
    """A model reference that is no alias, file, directory or cached hub model, with downloads off."""

    def __init__(self, name: str):
        close = difflib.get_close_matches(name, [*ALIASES, *cached_hub_models()], n=1, cutoff=0.6)
        self.closest = close[0] if close else None
        hint = f" Did you mean '{self.closest}'?" if self.closest else ""
        super().__init__(
            f"unknown model '{name}': not an alias, a local model directory, a .gguf file or a model in the "
            f"local Hugging Face cache, and downloads are off.{hint} Aliases: {', '.join(ALIASES)} "
            f"(`tuneforge models` lists what is here). To fetch a hub model, set model.allow_download=true "
            f"or download it first (`hf download {name}`).")


def cached_hub_models() -> list[str]:
    """Hub ids with a snapshot in the local Hugging Face cache (read from the folder names only)."""
    from huggingface_hub import constants

    root = Path(constants.HF_HUB_CACHE)
    if not root.is_dir():
        return []
    return sorted(d.name[len("models--"):].replace("--", "/") for d in root.glob("models--*")
                  if (d / "snapshots").is_dir())


def _resolve(cfg: ModelConfig) -> str:
    return resolve_model_path(cfg.name_or_path, allow_download=cfg.allow_download, revision=cfg.revision)


def _hub_kwargs(cfg: ModelConfig) -> dict:
    # What reaches from_pretrained is a local path unless the user allows downloads.
    offline = not cfg.allow_download or _hub_offline()
    return {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code, "local_files_only": offline}


def _not_cached(name: str, err: Exception) -> TuneforgeError:
    return TuneforgeError(f"cannot load '{name}': {err}")


def load_tokenizer(name_or_path: str | ModelConfig) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    cfg = name_or_path if isinstance(name_or_path, ModelConfig) else ModelConfig(name_or_path=name_or_path)
    path = _resolve(cfg)
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
    path = _resolve(cfg)
    quant = _quantization(cfg, device, dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **quant, **_hub_kwargs(cfg))
    except OSError as e:
        raise _not_cached(cfg.name_or_path, e) from e
    if not quant:
        model.to(device)
    model.eval()
    return model, load_tokenizer(cfg)
