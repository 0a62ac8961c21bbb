"""LLM-made training data (`tuneforge data generate RECIPE.yaml`): self_instruct, evolve, distill and
preferences, each through `tuneforge.llm_client` against any OpenAI-compatible teacher, each writing
canonical jsonl with provenance in `meta`, a rejects file, stats.json (in = kept + removed + failed) and
report.html, and each resumable after a kill with no duplicate records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuneforge.datagen.common import OnProgress
from tuneforge.datagen.distill import run_distill
from tuneforge.datagen.evolve import run_evolve
from tuneforge.datagen.output import Output
from tuneforge.datagen.preferences import run_preferences
from tuneforge.datagen.recipe import Recipe, load_recipe, parse_recipe
from tuneforge.datagen.self_instruct import run_self_instruct
from tuneforge.llm_client import LLMError, ResponseCache

__all__ = ["Recipe", "generate", "load_recipe", "parse_recipe"]

RUNNERS: dict[str, Callable[[Recipe, Output, ResponseCache, OnProgress], dict[str, Any]]] = {
    "self_instruct": run_self_instruct,
    "evolve": run_evolve,
    "distill": run_distill,
    "preferences": run_preferences,
}


def generate(recipe: Recipe, on_progress: OnProgress | None = None) -> dict[str, Any]:
    """Run a recipe (continuing a previous run into the same output_dir); returns stats.json's content.
    A fatal endpoint error (refused key, unknown model, unreachable URL) stops the run after writing
    stats.json with `complete: false`; every record written so far stays."""
    out = Output(recipe.output_dir, recipe.mode)
    cache = ResponseCache(recipe.cache_path)
    try:
        extra = RUNNERS[recipe.mode](recipe, out, cache, on_progress or (lambda done, total, usage: None))
    except LLMError as e:
        out.finish({}, {"complete": False, "error": str(e)})
        raise
    except BaseException:
        out.close()
        raise
    finally:
        cache.close()
    usage = extra.pop("usage", {})
    return out.finish(usage, {"complete": True, "teacher": recipe.teacher.model, **extra})
