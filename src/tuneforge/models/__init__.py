"""Model loading: aliases, local HF directories, GGUF files and hub ids from the local cache."""

from tuneforge.models.aliases import ALIASES, ModelAlias
from tuneforge.models.load import load_model, load_tokenizer, pick_device, pick_dtype, resolve_model_path
from tuneforge.models.tiny import tiny_llama

__all__ = ["ALIASES", "ModelAlias", "load_model", "load_tokenizer", "pick_device", "pick_dtype",
           "resolve_model_path", "tiny_llama"]
