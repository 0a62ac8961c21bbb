"""Export a trained artefact for serving elsewhere: merged into a standard HF model directory, or as a
clean adapter directory; either way with the tokenizer and its chat template, then checked.

The chat template is the one the run was trained with: when the run's config names a built-in template
(or its own Jinja, or a default system prompt), the exported tokenizer carries it as Jinja, so that
transformers, vLLM and others format prompts the way training did.

Merging happens in float32 whatever the export dtype (a LoRA update added to bf16 weights loses most of
its low bits), through peft's safe merge, which refuses weights that came out NaN; every tensor is
checked again before anything is written. The check after writing reloads the export the way a user
would (transformers for a merged model, base + adapter otherwise) and compares its logits on a probe
conversation with the adapted model's.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from tuneforge.config import ModelConfig, TemplateConfig
from tuneforge.errors import TuneforgeError
from tuneforge.methods.artefact import method_of, trained_template
from tuneforge.methods.artefact import resolve as resolve_artefact
from tuneforge.types import Message

PROBE = [Message("system", "You are a helpful assistant."),
         Message("user", "Summarise why the sky is blue in two sentences.")]


@dataclass(frozen=True)
class ExportReport:
    out_dir: Path
    method: str
    merged: bool
    dtype: str
    max_abs_logit_diff: float
    """Reloaded export vs the adapted model on the probe, both run in float32."""
    chat_template: str = "the tokenizer's own"
    """Which chat template the exported tokenizer carries."""

    def __str__(self) -> str:
        kind = "merged model" if self.merged else f"{self.method} adapter"
        return (f"exported {kind} ({self.dtype}) to {self.out_dir}\n"
                f"chat template: {self.chat_template}\n"
                f"parity: max |logit difference| vs the adapted model = {self.max_abs_logit_diff:.3g} (float32)")


def _load_base(model: str):
    from tuneforge.models import load_model

    return load_model(ModelConfig(name_or_path=model, dtype="float32", device="cpu"))


def _tokenizer(adapter: Path, fallback):
    """The tokenizer saved with the run (the one it was trained with), else the base's."""
    from transformers import AutoTokenizer

    if (adapter / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(adapter))
    return fallback


def _with_default_system(chat_template: str, system: str) -> str:
    """A Jinja chat template that first gives a conversation without a system prompt this one, as
    training did (`template.system`)."""
    message = json.dumps({"role": "system", "content": system}, ensure_ascii=False)
    return ("{%- if not messages or messages[0].role != 'system' %}{%- set messages = [" + message
            + "] + messages %}{%- endif %}\n" + chat_template)


def use_template(tokenizer, trained: TemplateConfig | None) -> str:
    """Give `tokenizer` the chat template a run was `trained` with (or one asked for), as Jinja with its
    default system prompt; returns what it carries now, for the report."""
    from tuneforge.formatting import load_template

    if trained is None or (trained.jinja is None and trained.name == "auto" and trained.system is None):
        return "the tokenizer's own"
    name = "the run's own Jinja" if trained.jinja is not None else trained.name
    source = load_template(trained, tokenizer).chat_template
    if source is None:
        message = (f"the run was trained with template '{name}', which cannot be written as a Jinja chat "
                   f"template: the export keeps the tokenizer's own, so tools that use it (transformers' "
                   f"apply_chat_template, vLLM) will format prompts differently from training")
        warnings.warn(message, stacklevel=3)
        return f"the tokenizer's own (warning: {message})"
    if trained.system is not None:
        source = _with_default_system(source, trained.system)
        name += " with the run's default system prompt"
    tokenizer.chat_template = source
    return f"{name}, as trained"


def _probe_logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        # prompt / ptuning put their virtual positions first; compare the real tokens' positions.
        return model(input_ids=ids).logits[:, -ids.shape[1]:].float()  # (1, T, V)


def _check_finite(model) -> None:
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise TuneforgeError(f"merged weight {name} holds NaN or inf; the adapter is broken, nothing written")


def _save_dtype(model, requested: str) -> torch.dtype:
    if requested != "auto":
        return getattr(torch, requested)
    declared = getattr(model.config, "dtype", None) or getattr(model.config, "torch_dtype", None)
    return getattr(torch, declared) if isinstance(declared, str) else declared or torch.float32


def export(model: str, adapter: str | Path, out_dir: str | Path, *, merge: bool = True,
           dtype: str = "auto") -> ExportReport:
    from tuneforge.formatting import load_template, prompt_text

    adapter, out_dir = resolve_artefact(adapter), Path(out_dir)  # a run directory means its final/
    method = method_of(adapter)
    if merge and not method.mergeable:
        raise TuneforgeError(f"{adapter}: a {method.name} artefact cannot be merged into the base weights; "
                             f"export it without --merge (an adapter directory)")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TuneforgeError(f"{out_dir}: exists and is not empty; choose a new directory")

    base, base_tokenizer = _load_base(model)
    tokenizer = _tokenizer(adapter, base_tokenizer)
    trained = trained_template(adapter)
    chat_template = use_template(tokenizer, trained)
    save_dtype = _save_dtype(base, dtype)
    adapted = method.load(base, adapter)
    text = prompt_text(load_template(trained or "auto", tokenizer), PROBE)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False).input_ids])  # (1, T)
    expected = _probe_logits(adapted, ids)  # (1, T, V)

    out_dir.mkdir(parents=True, exist_ok=True)
    if merge:
        try:
            adapted = method.merge(adapted)
        except ValueError as e:  # the merge's NaN check
            raise TuneforgeError(f"{adapter}: {e}") from None
        _check_finite(adapted)
        adapted.to(save_dtype).save_pretrained(str(out_dir))
        from transformers import AutoModelForCausalLM

        reloaded = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=torch.float32)
    else:
        method.save(adapted, out_dir)  # only the adapter's own files, no run leftovers
        fresh_base, _ = _load_base(model)
        reloaded = method.load(fresh_base, out_dir)
    # The chat template inside tokenizer_config.json, where every version of transformers and other tools
    # look (not only in chat_template.jinja, which older ones miss).
    tokenizer.save_pretrained(str(out_dir), save_jinja_files=False)
    diff = (_probe_logits(reloaded, ids) - expected).abs().max().item()
    return ExportReport(out_dir, method.name, merge, str(save_dtype if merge else "float32").removeprefix("torch."),
                        diff, chat_template)

