"""Evaluation and the strategy lab (zero-shot, few-shot, RAG, fine-tuned).

    run = run_eval(cfg)            # one model (+ a trained artefact): loss, batched answers, metrics, report
    result = run_compare(cfg)      # zero-shot vs few-shot vs RAG vs fine-tuned, with a recommendation
    build_metrics(["exact_match", {"name": "regex", "pattern": "..."}])   # the metric registry

Parts: `metrics` (registry), `overlap` (ROUGE-L, BLEU, chrF), `text` (EN/ZH tokenisation),
`generation`, `perplexity`, `icl`, `judge`, `forgetting`, `contamination`, `advice`, `report`.
"""

from tuneforge.eval.compare import Comparison, run_compare
from tuneforge.eval.metrics import METRICS, Metric, build_metrics, register_metric
from tuneforge.eval.runner import StrategyRun, run_eval

__all__ = ["METRICS", "Comparison", "Metric", "StrategyRun", "build_metrics", "register_metric", "run_compare",
           "run_eval"]
