"""`tuneforge serve --backend vllm`: the same model and adapters served by vLLM's OpenAI server (CUDA).

vLLM serves a HF model directory and, with `--enable-lora`, LoRA adapters by name; every other
artefact is exported first (`tuneforge export --merge`, or a full / freeze output as it is).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from tuneforge.errors import MissingDependency, TuneforgeError


def vllm_command(model: str, adapters: dict[str, str], *, host: str, port: int, api_key: str | None,
                 served_model_name: str | None, dtype: str) -> list[str]:
    """The argv of vLLM's OpenAI-compatible server for this model and these LoRA adapters."""
    from pathlib import Path

    from tuneforge.models import resolve_model_path

    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", resolve_model_path(model),
               "--host", host, "--port", str(port), "--dtype", dtype,
               "--served-model-name", served_model_name or Path(model).name]
    if api_key:
        command += ["--api-key", api_key]
    if adapters:
        for name, path in adapters.items():
            if not _plain_lora(path):
                raise TuneforgeError(f"adapter '{name}': vLLM serves LoRA adapters only; export this one with "
                                     f"`tuneforge export --merge` and serve the merged directory")
        command += ["--enable-lora", "--lora-modules", *(f"{n}={p}" for n, p in adapters.items())]
    return command


def _plain_lora(path: str) -> bool:
    """A peft LoRA adapter without DoRA: what vLLM's `--lora-modules` loads."""
    from tuneforge.methods.artefact import adapter_config, method_of

    config = adapter_config(path) or {}
    return method_of(path).peft_type == "LORA" and not config.get("use_dora")


def serve_vllm(model: str, adapters: dict[str, str], **options) -> None:
    if importlib.util.find_spec("vllm") is None:
        raise MissingDependency("vllm", None, "--backend vllm (a CUDA machine)")
    command = vllm_command(model, adapters, **options)
    raise SystemExit(subprocess.call(command))
