"""A trained directory resolved to what wrote it: the run's artefact (`resolve`), the method whose
`recognises` claims it (`method_of`) and the chat template the run trained with (`trained_template`).

Serving, evaluation and export ask these, then the method object (load, merge, shares a base, ...), so
that none of them knows method names or artefact files.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from tuneforge.errors import TuneforgeError
from tuneforge.methods import METHODS, Method
from tuneforge.methods._links import check_links
from tuneforge.methods._peft import adapter_config
from tuneforge.settings import TemplateConfig, read_yaml


def resolve(path: str | Path) -> Path:
    """The artefact directory `path` names: a run directory means its `final/` artefact."""
    p = Path(path)
    if (p / "final").is_dir() and (p / "manifest.json").is_file():
        return p / "final"
    if not p.is_dir():
        raise TuneforgeError(f"{path}: no such adapter, model or run directory")
    return p


def method_of(path: str | Path) -> Method:
    """The method that wrote an artefact directory (`final/` of a run). Every loader that serves or
    exports an artefact asks this first, so this is where links leading out of it are refused."""
    path = Path(path)
    if path.is_dir():
        check_links(path)
    claimed = [method for method in METHODS.values() if method.recognises(path)]
    # An adapter's files beside a model's config.json make the directory that adapter.
    adapters = [method for method in claimed if not method.writes_whole_model]
    config = adapter_config(path)
    if config is not None and not adapters:
        raise TuneforgeError(f"{path}: unsupported peft adapter type {config.get('peft_type')!r}")
    claimed = adapters or claimed
    if len(claimed) > 1:  # a registry bug: two methods would read one directory differently
        raise TuneforgeError(f"{path}: claimed by methods {', '.join(m.name for m in claimed)}")
    if claimed:
        return claimed[0]
    raise TuneforgeError(f"{path}: not an adapter or model directory written by tuneforge train "
                         f"(no adapter_config.json, bottleneck_adapter.json or config.json)")


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
