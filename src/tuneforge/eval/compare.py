"""`tuneforge compare`: zero-shot, few-shot, RAG and fine-tuned artefacts on the same eval set.

One engine serves the base model and every listed artefact, so all strategies decode the same way with
the same settings; each gets quality metrics, latency and prompt tokens per query (inference cost),
and fine-tuned ones their training cost from the run manifest. The report ends with a recommendation
(see `advice`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tuneforge.config import Config
from tuneforge.errors import TuneforgeError
from tuneforge.eval.advice import Recommendation, recommend
from tuneforge.eval.metrics import build_metrics
from tuneforge.eval.runner import OnProgress, StrategyRun, read_eval_set, read_samples_of, run_strategy
from tuneforge.methods.artefact import resolve as resolve_artefact

BASE = "base"


@dataclass
class Comparison:
    runs: list[StrategyRun]
    recommendation: Recommendation
    primary_metric: str
    report: Path


def training_cost(artefact: str) -> dict[str, float]:
    """`cost` of the run that wrote `artefact` (a run directory, or its `final/` / `best/`)."""
    path = Path(artefact)
    for candidate in (path / "manifest.json", path.parent / "manifest.json"):
        if candidate.is_file():
            cost = json.loads(candidate.read_text(encoding="utf-8")).get("cost", {})
            return {"training_seconds": cost.get("seconds"), "trained_tokens": cost.get("trained_tokens")}
    return {}


def planned_strategies(cfg: Config) -> tuple[list[str], list[str]]:
    """The prompting strategies that will run, and notes on those that cannot."""
    notes, strategies = [], []
    for how in cfg.eval.compare.strategies:
        if how == "rag" and not (cfg.eval.rag and (cfg.eval.rag.index or cfg.eval.rag.documents)):
            notes.append("rag skipped: no knowledge source (eval.rag.index or eval.rag.documents)")
        elif how == "few_shot" and not ((cfg.eval.icl and cfg.eval.icl.pool) or cfg.data.datasets):
            notes.append("few_shot skipped: no example pool (eval.icl.pool or data.datasets)")
        else:
            strategies.append(how)
    return strategies, notes


def judge_against_baseline(runs: list[StrategyRun], samples, cfg: Config, judge) -> None:
    """Each strategy's answers against the baseline's, judged A/B in both orders: its win rate (ties
    half), the questions without a verdict, and how often both orders agreed."""
    from tuneforge.eval.judge import load_prompt, pairwise
    from tuneforge.eval.runner import judge_questions

    name = cfg.eval.judge.pairwise_baseline
    baseline = next((r for r in runs if r.name == name), None)
    if baseline is None:
        raise TuneforgeError(f"eval.judge.pairwise_baseline '{name}' is not one of the compared strategies: "
                             f"{', '.join(r.name for r in runs)}")
    prompt = load_prompt(cfg.eval.judge.pairwise_file, "pairwise.txt")
    questions, references = judge_questions(samples), [r["reference"] for r in baseline.rows]
    for run in runs:
        if run is not baseline:
            result = pairwise(judge, questions, [r["answer"] for r in run.rows], [r["answer"] for r in baseline.rows],
                              references, prompt)
            run.extra.update({f"win_rate_vs_{name}": result.win_rate_a, "pairwise_invalid": result.counts["invalid"],
                              "pairwise_consistent": result.consistent})


def _warm_up(engine) -> None:
    """One tiny generation before timing: the first forward passes pay one-off costs (allocations,
    kernel selection) that would otherwise be charged to whichever strategy runs first."""
    from tuneforge.serve.sampling import SamplingParams
    from tuneforge.types import Message

    engine.complete(engine.encode_chat([Message("user", "Hello")]), SamplingParams(max_tokens=2))


def run_compare(cfg: Config, *, on_progress: OnProgress | None = None) -> Comparison:
    """`on_progress(strategy, answered, total)` as each strategy answers (and "chunking" / "embedding"
    when RAG indexes its documents here)."""
    from tuneforge.eval.report import write_compare_outputs
    from tuneforge.models import load_model
    from tuneforge.serve.engine import Engine

    cc = cfg.eval.compare
    samples, read_notes = read_eval_set(cfg)
    metrics = build_metrics(cfg.eval.metrics)
    primary = cc.primary_metric or metrics[0].name
    if primary not in {m.name for m in metrics}:
        raise TuneforgeError(f"eval.compare.primary_metric '{primary}' is not one of eval.metrics")
    strategies, skipped = planned_strategies(cfg)
    if BASE in cc.adapters or set(cc.adapters) & set(strategies):
        raise TuneforgeError(f"eval.compare.adapters: names must differ from {BASE}, {', '.join(strategies)}")
    adapters = {name: str(resolve_artefact(path)) for name, path in cc.adapters.items()}
    if not strategies and not adapters:
        raise TuneforgeError("nothing to compare: " + "; ".join(skipped or ["list strategies or adapters"]))
    pool = None
    if "few_shot" in strategies:
        pool, _ = read_samples_of((cfg.eval.icl and cfg.eval.icl.pool) or cfg.data.datasets, cfg)

    model, tokenizer = load_model(cfg.model)
    runs: list[StrategyRun] = []
    with Engine(model, tokenizer, model_id=BASE, adapters=adapters, template=cfg.template,
                max_batch_size=cfg.eval.generation.batch_size) as engine:
        _warm_up(engine)
        for how in strategies:
            runs.append(run_strategy(how, how, samples, cfg, engine, metrics, model=BASE, pool=pool,
                                     on_progress=on_progress))
        for name, path in adapters.items():
            run = run_strategy(name, "zero_shot", samples, cfg, engine, metrics, model=name, on_progress=on_progress)
            run.extra.update(training_cost(path))
            runs.append(run)
    runs[0].notes += skipped + read_notes
    if cfg.eval.judge:
        from tuneforge.eval.judge import make_judge
        from tuneforge.eval.runner import judge_run

        judge = make_judge(cfg.eval.judge)
        for run in runs:
            judge_run(run, samples, cfg, judge)
        if cfg.eval.judge.pairwise_baseline:
            judge_against_baseline(runs, samples, cfg, judge)
    recommendation = recommend(runs, primary, set(adapters), knowledge_changes_often=cc.knowledge_changes_often,
                               hallucination_tolerance=cc.hallucination_tolerance,
                               max_prompt_tokens=cc.max_prompt_tokens)
    report = write_compare_outputs(Path(cfg.eval.output_dir), runs, recommendation, primary)
    return Comparison(runs, recommendation, primary, report)
