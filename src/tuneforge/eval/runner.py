"""`tuneforge eval`: one model (with an optional trained artefact) on an eval set, end to end.

Reads the eval set, scores the reference answers' loss, builds each question's prompt (zero-shot,
few-shot or retrieval-augmented), generates every answer in batches, scores them with the configured
metrics (and a judge), and writes `results.jsonl` (one line per sample), `summary.json` and
`report.html` to `eval.output_dir`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.config import Config, DataConfig
from tuneforge.errors import TuneforgeError
from tuneforge.eval.generation import Answers, generate_answers
from tuneforge.eval.metrics import Metric, build_metrics
from tuneforge.types import Message, Sample

PROMPTINGS = ("zero_shot", "few_shot", "rag")

OnProgress = Callable[[str, int, int], None]
"""`on_progress(what, done, total)`: how far one named piece of work (a strategy's answers, the
reference loss, embedding a knowledge base) has got; called with done == total at its end."""


@dataclass
class StrategyRun:
    """One way of answering the eval set (a prompting strategy, or a fine-tuned artefact), scored."""

    name: str
    rows: list[dict[str, Any]]
    scores: dict[str, float | None]
    seconds_per_query: float
    prompt_tokens_per_query: float
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Perplexity, judge figures, training cost: whatever applies to this strategy."""

    def summary(self) -> dict[str, Any]:
        return {"strategy": self.name, "samples": len(self.rows), "scores": self.scores,
                "seconds_per_query": self.seconds_per_query, "prompt_tokens_per_query": self.prompt_tokens_per_query,
                **self.extra, "notes": self.notes}


def read_eval_set(cfg: Config) -> tuple[list[Sample], list[str]]:
    """The eval samples, and a note on records the reader rejected (with `data.on_error: skip`)."""
    if not cfg.eval.datasets:
        raise TuneforgeError("eval.datasets is empty: name the eval set (chat samples ending with their "
                             "reference answer)")
    samples, report = read_samples_of(cfg.eval.datasets, cfg)
    notes = [f"{report.n_rejected} eval records rejected while reading ({report.rejects_path or 'not written'})"
             ] if report.n_rejected else []
    samples = samples[:cfg.eval.limit] if cfg.eval.limit else samples
    if not samples:
        raise TuneforgeError("the eval set holds no samples")
    wrong = next((s for s in samples if s.kind != "chat" or not s.messages), None)
    if wrong is not None:
        raise TuneforgeError(f"{wrong.where}: evaluation needs chat samples (messages), got a {wrong.kind} sample")
    return samples, notes


def read_samples_of(datasets, cfg: Config):
    from tuneforge.io import read_samples

    return read_samples(DataConfig(datasets=datasets, placeholders=cfg.data.placeholders, on_error=cfg.data.on_error,
                                   rejects_path=cfg.data.rejects_path))


def reference_of(sample: Sample) -> str | None:
    last = sample.messages[-1]
    return last.content if last.role == "assistant" else None


def question_of(sample: Sample, system: str | None = None) -> list[Message]:
    """The conversation to answer: without the reference, with the default system prompt if it has none."""
    from tuneforge.serve.generate import prompt_of

    messages = prompt_of(sample)
    if system and messages[0].role != "system":
        messages = [Message("system", system), *messages]
    return messages


def score_answers(samples: list[Sample], answers: Answers, metrics: list[Metric],
                  prompts: list[list[Message]]) -> tuple[list[dict[str, Any]], dict[str, float | None]]:
    references = [reference_of(s) for s in samples]
    rows = []
    values: dict[str, list[float | None]] = {m.name: [] for m in metrics}
    for i, sample in enumerate(samples):
        scores = {}
        for m in metrics:
            scores[m.name] = m.score(answers.texts[i], references[i])
            values[m.name].append(scores[m.name])
        rows.append({"id": sample.id or str(i), "prompt": [m.to_dict() for m in prompts[i]],
                     "answer": answers.texts[i], "reference": references[i], "metrics": scores,
                     "prompt_tokens": answers.prompt_tokens[i], "completion_tokens": answers.completion_tokens[i],
                     "finish_reason": answers.finish_reasons[i]})
    summary = {m.name: m.summarize(answers.texts, references, values[m.name]) for m in metrics}
    return rows, summary


def prompts_for(how: str, questions: list[list[Message]], cfg: Config, engine, *, pool: list[Sample] | None = None,
                on_progress: OnProgress | None = None) -> tuple[list[list[Message]], list[str], float]:
    """Prompts of one prompting strategy, notes on how they were built (shortened, retrieved ...), and
    the seconds per query spent building them: choosing examples and retrieving context are part of
    what a query costs (building the index is not)."""
    if how == "zero_shot":
        return questions, [], 0.0
    if how == "few_shot":
        from tuneforge.config import ICLConfig
        from tuneforge.eval.icl import few_shot_prompts

        icl = cfg.eval.icl or ICLConfig()
        if pool is None:
            pool, _ = read_samples_of(icl.pool or cfg.data.datasets, cfg)
        budget = icl.context_budget or engine.context_length - cfg.eval.generation.max_new_tokens
        started = time.perf_counter()
        shots = few_shot_prompts(pool, questions, icl, count_tokens=lambda m: len(engine.encode_chat(m)),
                                 budget=budget)
        seconds = time.perf_counter() - started
        notes = [f"{icl.selection} examples from a pool of {len(pool)}; {sum(shots.shots) / len(shots.shots):.1f} "
                 f"per question"]
        if shots.shortened:
            notes.append(f"{shots.shortened} prompts hold fewer than k={icl.k} examples to fit {budget} tokens")
        return shots.prompts, notes, seconds / len(questions)
    if how == "rag":
        from tuneforge.rag import rag_prompt

        rag, index = knowledge_index(cfg, engine.tokenizer, on_progress)
        started = time.perf_counter()
        prompts = [rag_prompt(q, index.search(q[-1].content, rag.top_k, rag.retrieval)) for q in questions]
        seconds = time.perf_counter() - started
        notes = [f"{rag.retrieval} retrieval, top {rag.top_k} of {len(index.chunks)} chunks"]
        return prompts, notes, seconds / len(questions)
    raise TuneforgeError(f"unknown prompting '{how}' ({', '.join(PROMPTINGS)})")


def knowledge_index(cfg: Config, tokenizer, on_progress: OnProgress | None = None):
    from tuneforge.rag import build_index, load_index

    rag = cfg.eval.rag
    if rag is None or not (rag.index or rag.documents):
        raise TuneforgeError("RAG needs eval.rag.index or eval.rag.documents")
    if rag.index:
        return rag, load_index(rag.index)
    index = build_index(rag.documents, tokenizer, chunk_tokens=rag.chunk_tokens, overlap=rag.chunk_overlap,
                        on_progress=on_progress)
    index.save(Path(cfg.eval.output_dir) / "rag_index")
    return rag, index


def run_strategy(name: str, how: str, samples: list[Sample], cfg: Config, engine, metrics: list[Metric], *,
                 model: str | None = None, pool: list[Sample] | None = None,
                 on_progress: OnProgress | None = None) -> StrategyRun:
    """Answers of one strategy (`how` prompts, `model` routes to a fine-tuned artefact), scored; its
    progress is reported as `name`."""
    questions = [question_of(s, cfg.template.system) for s in samples]
    prompts, notes, preparing = prompts_for(how, questions, cfg, engine, pool=pool, on_progress=on_progress)
    answered = (lambda done, total: on_progress(name, done, total)) if on_progress else None
    answers = generate_answers(engine, prompts, cfg.eval.generation, model=model, on_progress=answered)
    rows, scores = score_answers(samples, answers, metrics, prompts)
    cut = sum(r == "length" for r in answers.finish_reasons)
    if cut:
        notes.append(f"{cut} answers reached max_new_tokens={cfg.eval.generation.max_new_tokens}")
    return StrategyRun(name, rows, scores, answers.seconds_per_query + preparing,
                       sum(answers.prompt_tokens) / len(answers.prompt_tokens), notes)


def artefact_name(artefact: Path) -> str:
    """What an eval of `artefact` is called: its run directory's name (for the run's `final/`), with
    the rest of the path for `best/` or a checkpoint; the directory's own name outside a run."""
    for run_dir in [artefact, *artefact.parents][:3]:
        if (run_dir / "manifest.json").is_file():
            rest = artefact.relative_to(run_dir).as_posix()
            return run_dir.name if rest in (".", "final") else f"{run_dir.name}/{rest}"
    return artefact.name


def run_eval(cfg: Config, *, on_progress: OnProgress | None = None) -> StrategyRun:
    """`on_progress(what, done, total)` as the work goes: the run's name (its answers), "reference
    loss", and for RAG "chunking" / "embedding" when the knowledge base is indexed here."""
    from tuneforge.eval.report import write_eval_outputs
    from tuneforge.methods.artefact import method_of, resolve
    from tuneforge.models import load_model
    from tuneforge.serve.engine import Engine

    samples, read_notes = read_eval_set(cfg)
    metrics = build_metrics(cfg.eval.metrics)
    artefact = resolve(cfg.eval.adapter) if cfg.eval.adapter else None
    model, tokenizer = load_model(cfg.model)
    extra: dict[str, Any] = {}
    virtual_tokens = False
    if artefact is not None:
        virtual_tokens = method_of(artefact).uses_prompt_tokens
        if cfg.eval.forgetting:
            from tuneforge.eval.forgetting import forgetting_check

            forgetting, model = forgetting_check(model, tokenizer, artefact, cfg.template)
            extra["forgetting"] = forgetting.to_dict()
        else:
            model = method_of(artefact).load(model, artefact)
    how = cfg.eval.prompting
    # A trained artefact's answers are named by it, so that its summary and report say what was tested.
    name = how if artefact is None else artefact_name(artefact) + ("" if how == "zero_shot" else f" + {how}")
    with Engine(model, tokenizer, template=cfg.template, max_batch_size=cfg.eval.generation.batch_size) as engine:
        run = run_strategy(name, how, samples, cfg, engine, metrics, on_progress=on_progress)
    run.extra.update(extra)
    run.notes += read_notes
    if cfg.eval.perplexity:
        from tuneforge.eval.perplexity import reference_loss

        scored = (lambda done, total: on_progress("reference loss", done, total)) if on_progress else None
        loss = reference_loss(model, tokenizer, samples, cfg.template, virtual_tokens=virtual_tokens,
                              on_progress=scored)
        for row, value in zip(run.rows, loss.per_sample):
            row["reference_loss"] = value
        run.extra.update(reference_loss=loss.loss, perplexity=loss.perplexity, reference_tokens=loss.tokens)
        if loss.skipped:
            run.notes.append(f"perplexity skipped samples: {loss.skipped}")
    if cfg.eval.contamination and cfg.data.datasets:
        contamination_run(run, samples, cfg)
    if cfg.eval.judge:
        judge_run(run, samples, cfg)
    write_eval_outputs(Path(cfg.eval.output_dir), cfg, run)
    return run


def training_paths(cfg: Config) -> list[str]:
    return [p for d in cfg.data.datasets for p in ([d.path] if isinstance(d.path, str) else d.path)]


def contamination_run(run: StrategyRun, samples: list[Sample], cfg: Config) -> None:
    from tuneforge.eval.contamination import contamination_check

    found = contamination_check(samples, training_paths(cfg))
    run.extra["contamination"] = found.to_dict()
    if found.prompts:
        run.notes.append(f"{len(found.prompts)} of {found.checked} eval prompts near-copy training prompts "
                         f"(first: {found.prompts[0]['id']} ~ {found.prompts[0]['match']}): scores may measure memory")


def judge_questions(samples: list[Sample]) -> list[str]:
    """What a judge is shown as the question: the user turn, or the whole conversation when longer."""
    return [json.dumps([m.to_dict() for m in question_of(s)], ensure_ascii=False) if len(s.messages) > 2
            else question_of(s)[-1].content for s in samples]


def judge_run(run: StrategyRun, samples: list[Sample], cfg: Config, complete=None) -> None:
    """Rubric scores of `run`'s answers; `complete`: a judge made once for several runs."""
    from tuneforge.eval.judge import load_prompt, make_judge, rubric_scores

    judge = cfg.eval.judge
    assert judge is not None
    result = rubric_scores(complete or make_judge(judge), judge_questions(samples), [r["answer"] for r in run.rows],
                           [r["reference"] for r in run.rows], load_prompt(judge.rubric_file, "rubric.txt"))
    for row, score in zip(run.rows, result.scores):
        row["judge_score"] = score
    run.extra.update(judge_score=result.mean, judge_invalid=result.invalid)
