"""A base model plus named adapters, and which of them may decode together in one batch.

LoRA, DoRA and IA3 adapters of one kind share the base weights inside one `PeftModel`. Plain LoRA rows
(and base rows) of different adapters mix in one batch through peft's per-row `adapter_names`;
DoRA and IA3 cannot mix, so their rows are grouped by adapter and peft's active adapter is switched
per batch. Prefix, prompt and P-tuning adapters leave the base weights alone: what they add is a fixed
run of virtual tokens before every prompt (`VirtualTokens`, computed once at load), so their rows run
through the base like base rows and share its batches. Every other artefact gets its own model:
bottleneck adapters hook into the modules of a private copy of the base, and full / freeze outputs are
whole models of their own.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from pydantic import ValidationError
from torch import nn

from tuneforge.config import TemplateConfig, read_yaml
from tuneforge.errors import TuneforgeError

PEFT_METHODS = {"LORA": "lora", "IA3": "ia3", "PREFIX_TUNING": "prefix", "PROMPT_TUNING": "prompt",
                "P_TUNING": "ptuning"}
SHAREABLE = {"LORA", "IA3"}
"""peft types whose weights live inside the base's own modules, so adapters of one type share a base."""
MIXED_BATCH_BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


def detect_method(path: str | Path) -> str:
    """The training method that wrote an artefact directory (`final/` of a run). Every loader that
    serves or exports an artefact asks this first, so this is where links leading out of it are refused."""
    from tuneforge.methods._links import check_links
    from tuneforge.methods.adapter import CONFIG_FILE

    path = Path(path)
    if path.is_dir():
        check_links(path)
    if (path / "adapter_config.json").is_file():
        peft_type = json.loads((path / "adapter_config.json").read_text(encoding="utf-8")).get("peft_type")
        if peft_type not in PEFT_METHODS:
            raise TuneforgeError(f"{path}: unsupported peft adapter type {peft_type!r}")
        return PEFT_METHODS[peft_type]
    if (path / CONFIG_FILE).is_file():
        return "adapter"
    if (path / "config.json").is_file():
        return "full"  # full and freeze both write a whole model directory
    raise TuneforgeError(f"{path}: not an adapter or model directory written by tuneforge train "
                         f"(no adapter_config.json, {CONFIG_FILE} or config.json)")


def trained_template(path: str | Path) -> TemplateConfig | None:
    """The `template` section of the run that wrote artefact `path` (a run's `final/` or `best/`), so
    that serving and export format prompts the way training did. An artefact with no run config beside
    it (an exported adapter directory) carries the template in its own tokenizer files, as `export`
    writes it; None when neither is there."""
    config = Path(path).parent / "config.yaml"
    if not config.is_file():
        return _shipped_template(Path(path))
    raw = read_yaml(config.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or "template" not in raw:
        return None
    try:
        return TemplateConfig.model_validate(raw["template"])
    except ValidationError as e:
        raise TuneforgeError(f"{config}: the run's template section is not valid: {e}") from None


def _shipped_template(path: Path) -> TemplateConfig | None:
    """The chat template saved with an adapter's tokenizer (`chat_template.jinja`, or the
    `chat_template` string of `tokenizer_config.json`)."""
    jinja_file, tokenizer_config = path / "chat_template.jinja", path / "tokenizer_config.json"
    if jinja_file.is_file():
        return TemplateConfig(jinja=jinja_file.read_text(encoding="utf-8"))
    if tokenizer_config.is_file():
        template = json.loads(tokenizer_config.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, str):
            return TemplateConfig(jinja=template)
    return None


def peft_info(path: Path) -> tuple[str, bool]:
    config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    return config["peft_type"], bool(config.get("use_dora"))


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
        from tuneforge.methods import get_method

        base_virtual = NO_VIRTUAL_TOKENS
        if is_prompt_learning(base):
            base_virtual, base = virtual_tokens_of(base), base.get_base_model()
        adapters = {name: Path(p) for name, p in (adapters or {}).items()}
        if base_id in adapters:
            raise TuneforgeError(f"adapter name '{base_id}' is the base model's id; choose another")
        methods = {name: detect_method(path) for name, path in adapters.items()}
        infos = {name: peft_info(adapters[name]) for name, m in methods.items() if m in ("lora", "ia3")}
        shared_type = next(iter(infos.values()))[0] if infos else None
        shared = [name for name, (t, _) in infos.items() if t == shared_type]
        mixed = shared_type == "LORA" and not any(dora for name, (_, dora) in infos.items() if name in shared)
        self.embed = base.get_input_embeddings()

        # Own models and virtual tokens first, while the base is still unwrapped: deep copies must not
        # carry shared adapters.
        self.routes: dict[str, Route] = {}
        virtual: dict[str, VirtualTokens] = {}
        for name in adapters:
            if get_method(methods[name]).uses_prompt_tokens:
                # The PeftModel wraps the base without changing it, and is dropped once its prompt is read.
                virtual[name] = virtual_tokens_of(get_method(methods[name]).load(base, adapters[name]))
            elif name not in shared:
                own_base = base if methods[name] == "full" else copy.deepcopy(base)
                model = get_method(methods[name]).load(own_base, adapters[name]).eval()
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
