"""A base model plus named adapters, and which of them may decode together in one batch.

LoRA, DoRA and IA3 adapters of one kind share the base weights inside one `PeftModel`. Plain LoRA rows
(and base rows) of different adapters mix in one batch through peft's per-row `adapter_names`;
DoRA and IA3 cannot mix, so their rows are grouped by adapter and peft's active adapter is switched
per batch. Every other artefact gets its own model: bottleneck adapters hook into the modules of a
private copy of the base, and full / freeze outputs are whole models of their own.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from tuneforge.errors import TuneforgeError

PEFT_METHODS = {"LORA": "lora", "IA3": "ia3", "PREFIX_TUNING": "prefix", "PROMPT_TUNING": "prompt",
                "P_TUNING": "ptuning"}
SHAREABLE = {"LORA", "IA3"}
"""peft types whose weights live inside the base's own modules, so adapters of one type share a base."""
MIXED_BATCH_BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


def detect_method(path: str | Path) -> str:
    """The training method that wrote an artefact directory (`final/` of a run)."""
    from tuneforge.methods.adapter import CONFIG_FILE

    path = Path(path)
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


def peft_info(path: Path) -> tuple[str, bool]:
    config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    return config["peft_type"], bool(config.get("use_dora"))


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


class ModelSet:
    def __init__(self, base: nn.Module, base_id: str, adapters: dict[str, str | Path] | None = None):
        from tuneforge.methods import get_method

        adapters = {name: Path(p) for name, p in (adapters or {}).items()}
        if base_id in adapters:
            raise TuneforgeError(f"adapter name '{base_id}' is the base model's id; choose another")
        methods = {name: detect_method(path) for name, path in adapters.items()}
        for name, method in methods.items():
            if get_method(method).uses_prompt_tokens:
                raise TuneforgeError(f"adapter '{name}' ({method}): virtual-token methods cannot be served by "
                                     f"the batching engine; serve a LoRA, DoRA, IA3, adapter, full or freeze "
                                     f"artefact")
        infos = {name: peft_info(adapters[name]) for name, m in methods.items() if m in ("lora", "ia3")}
        shared_type = next(iter(infos.values()))[0] if infos else None
        shared = [name for name, (t, _) in infos.items() if t == shared_type]
        mixed = shared_type == "LORA" and not any(dora for name, (_, dora) in infos.items() if name in shared)

        # Own models first, while the base is still unwrapped: deep copies must not carry shared adapters.
        self.routes: dict[str, Route] = {}
        for name in adapters:
            if name not in shared:
                own_base = base if methods[name] == "full" else copy.deepcopy(base)
                model = get_method(methods[name]).load(own_base, adapters[name]).eval()
                self.routes[name] = Route(name, name, model)
        self.peft = None
        if shared:
            from peft import PeftModel

            self.peft = PeftModel.from_pretrained(base, str(adapters[shared[0]]), adapter_name=shared[0])
            for name in shared[1:]:
                self.peft.load_adapter(str(adapters[name]), adapter_name=name)
            self.peft.requires_grad_(False).eval()
            for name in shared:
                self.routes[name] = Route(name, "shared" if mixed else name, self.peft, name, mixed)
        self.routes[base_id] = Route(base_id, "shared" if mixed else base_id, self.peft or base, None, mixed)
        self.base_id = base_id
        self.base = base

    @property
    def model_ids(self) -> list[str]:
        return [self.base_id, *[m for m in self.routes if m != self.base_id]]

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
