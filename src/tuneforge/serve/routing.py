"""A base model plus named adapters, and which of them may decode together in one batch.

Each artefact's method (`tuneforge.methods.artefact.method_of`) says how it is served. Adapters of a
method that shares a base (`shares_base`: LoRA, DoRA, IA3) share the base weights inside one
`PeftModel`, one kind at a time. Where the method allows it (`mixes_rows`: plain LoRA), rows of
different adapters and base rows mix in one batch through peft's per-row `adapter_names`; otherwise
(DoRA, IA3) their rows are grouped by adapter and peft's active adapter is switched per batch. Methods
with prompt tokens (prefix, prompt, P-tuning) leave the base weights alone: what they add is a fixed
run of virtual tokens before every prompt (`VirtualTokens`, computed once at load), so their rows run
through the base like base rows and share its batches. Every other artefact gets its own model: a
private copy of the base to load onto (bottleneck adapters hook into its modules), or, for a method
that writes a whole model (full, freeze), that model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from tuneforge.config import TemplateConfig
from tuneforge.errors import TuneforgeError
from tuneforge.methods.artefact import method_of, trained_template
from tuneforge.methods.artefact import resolve as resolve_artefact

MIXED_BATCH_BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass(frozen=True)
class VirtualTokens:
    """What a prefix / prompt / P-tuning adapter puts before every prompt. At inference it does not
    depend on the input, so it is computed once, by peft's own `get_prompt`."""

    embeddings: torch.Tensor | None = None
    """(N, E) prompt and P-tuning: input embeddings that go before the prompt's own."""
    prefix: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()
    """Prefix tuning: per layer, keys and values (H, N, D) that go before the prompt's in the KV cache."""

    def __len__(self) -> int:
        if self.embeddings is not None:
            return self.embeddings.shape[0]
        return self.prefix[0][0].shape[1] if self.prefix else 0


NO_VIRTUAL_TOKENS = VirtualTokens()


def virtual_tokens_of(model) -> VirtualTokens:
    """The virtual tokens of a prompt-learning `PeftModel`'s active adapter."""
    with torch.no_grad():
        prompt = model.get_prompt(batch_size=1)
    if model.active_peft_config.peft_type != "PREFIX_TUNING":
        return VirtualTokens(embeddings=prompt[0].detach())  # (N, E)
    if not hasattr(prompt, "layers"):
        raise TuneforgeError(f"peft gives the prefix of a {model.config.model_type} model in a legacy cache "
                             f"format, which the engine does not serve")
    return VirtualTokens(prefix=tuple((layer.keys[0].detach(), layer.values[0].detach()) for layer in prompt.layers))


def is_prompt_learning(model: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel) and model.active_peft_config.is_prompt_learning


@dataclass(frozen=True)
class Route:
    """How to run the rows of one served model id."""

    model_id: str
    group: str
    """Rows of the same group may share a batch."""
    model: nn.Module = field(repr=False)
    peft_adapter: str | None = None
    """The adapter's name inside a shared PeftModel; None for the base or a model of its own."""
    mixed: bool = False
    """The group mixes adapters row by row (peft's `adapter_names`)."""
    virtual: VirtualTokens = NO_VIRTUAL_TOKENS
    template: TemplateConfig | None = None
    """The chat template settings the artefact was trained with, when its run recorded them."""


class ModelSet:
    def __init__(self, base: nn.Module, base_id: str, adapters: dict[str, str | Path] | None = None):
        """`base` may itself be a prompt-learning PeftModel (evaluation loads an adapter that way): it is
        served as its base model with the adapter's virtual tokens."""
        base_virtual = NO_VIRTUAL_TOKENS
        if is_prompt_learning(base):
            base_virtual, base = virtual_tokens_of(base), base.get_base_model()
        adapters = {name: resolve_artefact(p) for name, p in (adapters or {}).items()}  # a run dir: its final/
        if base_id in adapters:
            raise TuneforgeError(f"adapter name '{base_id}' is the base model's id; choose another")
        methods = {name: method_of(path) for name, path in adapters.items()}
        # Adapters of the first shareable method share the base; those of another get models of their own.
        shared_method = next((m for m in methods.values() if m.shares_base), None)
        shared = [name for name, m in methods.items() if m is shared_method]
        mixed = bool(shared) and all(shared_method.mixes_rows(adapters[name]) for name in shared)
        self.embed = base.get_input_embeddings()

        # Own models and virtual tokens first, while the base is still unwrapped: deep copies must not
        # carry shared adapters.
        self.routes: dict[str, Route] = {}
        virtual: dict[str, VirtualTokens] = {}
        for name, method in methods.items():
            if method.uses_prompt_tokens:
                # The PeftModel wraps the base without changing it, and is dropped once its prompt is read.
                virtual[name] = virtual_tokens_of(method.load(base, adapters[name]))
            elif name not in shared:
                own_base = base if method.writes_whole_model else copy.deepcopy(base)
                model = method.load(own_base, adapters[name]).eval()
                self.routes[name] = Route(name, name, model)
        self.peft = None
        if shared:
            from peft import PeftModel

            from tuneforge.methods._peft import peft_quiet

            with peft_quiet():
                self.peft = PeftModel.from_pretrained(base, str(adapters[shared[0]]), adapter_name=shared[0])
            for name in shared[1:]:
                self.peft.load_adapter(str(adapters[name]), adapter_name=name)
            self.peft.requires_grad_(False).eval()
            for name in shared:
                self.routes[name] = Route(name, "shared" if mixed else name, self.peft, name, mixed)
        base_route = Route(base_id, "shared" if mixed else base_id, self.peft or base, None, mixed, base_virtual)
        # Rows starting with virtual embeddings are fed embeddings, not ids, for the whole batch: where a
        # mixed batch has a LoRA on the embedding layer, its rows would lose it, so such rows batch alone.
        embed_wrapped = base.get_input_embeddings() is not self.embed
        for name, tokens in virtual.items():
            alone = mixed and embed_wrapped and tokens.embeddings is not None
            self.routes[name] = replace(base_route, model_id=name, group=name if alone else base_route.group,
                                        mixed=mixed and not alone, virtual=tokens)
        self.routes = {base_id: base_route, **{name: replace(self.routes[name], template=trained_template(path))
                                               for name, path in adapters.items()}}
        self.base_id = base_id
        self.base = base

    @property
    def model_ids(self) -> list[str]:
        return list(self.routes)

    def forward(self, routes: list[Route]) -> Callable[..., torch.Tensor]:
        """A function running one forward pass for rows routed as `routes` (all of one group)."""
        first = routes[0]
        if first.mixed:
            names = [r.peft_adapter or MIXED_BATCH_BASE for r in routes]
            return lambda **inputs: first.model(**inputs, adapter_names=names)
        if first.model is self.peft:
            def run(**inputs):
                if first.peft_adapter is None:
                    context = self.peft.disable_adapter()
                else:
                    self.peft.set_adapter(first.peft_adapter)
                    context = nullcontext()
                with context:
                    return first.model(**inputs)
            return run
        return lambda **inputs: first.model(**inputs)
