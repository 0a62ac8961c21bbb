"""Data curation: cleaning, filters, dedup, PII and safety operators, the sharded runner, diagnostics.

    from tuneforge.curate import run, parse_op
    stats = run(samples, [parse_op({"op": "length", "unit": "words", "min": 3}, "ops[0]")], "out/")
"""

from tuneforge.curate import clean, dedup, filters, judge, llm_score, pii, quality_model, reference, safety, semantic  # noqa: F401  (registers the operators)
from tuneforge.curate.base import REGISTRY, Drop, OpConfig, parse_op, register
from tuneforge.curate.pipeline import OUTPUT, READ_REJECTS, REJECTS, STATS, RunOptions, run
from tuneforge.curate.recipe import REPORT, Recipe, curate, load_recipe, parse_recipe, read_output

__all__ = ["REGISTRY", "Drop", "OpConfig", "parse_op", "register", "run", "RunOptions", "OUTPUT", "REJECTS",
           "READ_REJECTS", "STATS", "REPORT", "Recipe", "curate", "load_recipe", "parse_recipe", "read_output"]
