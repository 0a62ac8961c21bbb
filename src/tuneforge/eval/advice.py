"""Which strategy to use (zero-shot, few-shot, RAG or fine-tuning): from measured results (`recommend`,
after a comparison) or from a description of the use case (`advise`, before any data is run).

The trade-offs followed (and written out as reasons):
- knowledge that changes often, or must be quoted faithfully → RAG (re-index in minutes; answers
  grounded in retrieved text; low tolerance for hallucination favours it);
- a format, style or behaviour → fine-tuning (learnt once; prompts stay short, so inference is cheap);
- only a few labelled examples → few-shot prompting (nothing to train; every query pays for the
  examples in prompt tokens);
- an inference budget in prompt tokens per query rules out strategies above it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

TIE_MARGIN = 0.02
"""Scores within this (absolute, on 0-1 metrics; scaled for 0-100 ones) count as a tie: the cheaper
strategy is recommended."""


@dataclass
class Recommendation:
    strategy: str
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def kind_of(name: str, finetuned: set[str]) -> str:
    return "fine_tuned" if name in finetuned else name


def recommend(runs, primary: str, finetuned: set[str], *, knowledge_changes_often: bool = False,
              hallucination_tolerance: str = "medium", max_prompt_tokens: int | None = None) -> Recommendation:
    """The strategy to use, from measured `runs` (StrategyRun) ranked by `primary` (higher is better)."""
    scored = [r for r in runs if r.scores.get(primary) is not None]
    if not scored:
        return Recommendation("undecided", [f"no strategy has a '{primary}' score"])
    reasons: list[str] = []
    affordable = scored
    if max_prompt_tokens is not None:
        affordable = [r for r in scored if r.prompt_tokens_per_query <= max_prompt_tokens]
        over = [r.name for r in scored if r not in affordable]
        if over:
            reasons.append(f"over the budget of {max_prompt_tokens} prompt tokens/query: {', '.join(over)}")
        if not affordable:
            affordable = scored
            reasons.append("no strategy fits the budget; ranking all of them")
    scale = 100.0 if max(abs(r.scores[primary]) for r in scored) > 1.0 else 1.0
    best = max(affordable, key=lambda r: r.scores[primary])
    tied = [r for r in affordable if best.scores[primary] - r.scores[primary] <= TIE_MARGIN * scale]
    preferred = "rag" if knowledge_changes_often or hallucination_tolerance == "low" else None
    # among ties: the preferred strategy by use case, else the cheapest per query, training counting last
    choice = min(tied, key=lambda r: (kind_of(r.name, finetuned) != preferred, r.prompt_tokens_per_query,
                                      r.name in finetuned))
    ranking = ", ".join(f"{r.name} {r.scores[primary]:.3g}" for r in sorted(scored, key=lambda r: -r.scores[primary]))
    reasons.insert(0, f"{primary}: {ranking}")
    if choice is not best:
        reasons.append(f"{choice.name} is within {TIE_MARGIN * scale:g} of the best ({best.name}) and is preferred: "
                       + ("the use case favours RAG" if kind_of(choice.name, finetuned) == preferred
                          else "it costs less per query"))
    reasons += _why(kind_of(choice.name, finetuned), choice, knowledge_changes_often)
    return Recommendation(choice.name, reasons)


def _why(kind: str, run, knowledge_changes_often: bool) -> list[str]:
    tokens = f"{run.prompt_tokens_per_query:.0f} prompt tokens/query"
    if kind == "fine_tuned":
        out = [f"fine-tuning taught the task itself (format, style or behaviour) and keeps prompts short ({tokens})"]
        if knowledge_changes_often:
            out.append("but the knowledge changes often: retrain on each change, or combine with RAG for the facts")
        return out
    if kind == "rag":
        return [f"the answers depend on facts in your documents: retrieval grounds them ({tokens}); "
                "update the index, not the model, when the documents change"]
    if kind == "few_shot":
        return [f"a few examples in the prompt are enough, with nothing to train; each query pays for them ({tokens})"]
    return [f"the base model already does the task without examples ({tokens}); adapt only if quality must rise"]


Task = Literal["knowledge", "format", "skill"]


@dataclass
class UseCase:
    task: Task
    """`knowledge`: answers need facts from your documents; `format`: an output format, style or
    behaviour; `skill`: a task-specific ability (classification, extraction, edge cases)."""
    examples: int
    """Labelled examples (question + ideal answer) you have."""
    has_documents: bool
    knowledge_changes_often: bool
    hallucination_tolerance: Literal["low", "medium", "high"] = "medium"
    inference_budget: Literal["low", "medium", "high"] = "medium"
    """How much each query may cost: `low` rules out long prompts (many examples, retrieved context)."""
    can_train: bool = True
    """A GPU (or time on a CPU) for fine-tuning."""


def advise(case: UseCase) -> Recommendation:
    """The strategy to try first for a described use case, with the reasons (points per trade-off)."""
    points = {"zero_shot": 0.0, "few_shot": 0.0, "rag": 0.0, "fine_tuned": 0.0}
    reasons: dict[str, list[str]] = {k: [] for k in points}

    def give(strategy: str, amount: float, why: str) -> None:
        points[strategy] += amount
        reasons[strategy].append(why)

    if case.task == "knowledge":
        if case.has_documents:
            give("rag", 3, "the answers need facts from your documents: retrieval puts them in the prompt")
        else:
            give("fine_tuned", 1, "facts without documents to retrieve from can only be taught by training")
        if case.knowledge_changes_often:
            give("rag", 2, "the knowledge changes often: re-indexing takes minutes, retraining does not")
    else:
        give("fine_tuned", 2 if case.task == "format" else 1.5,
             "a format, style or behaviour is learnt best from examples by fine-tuning")
        give("few_shot", 0.5, "examples in the prompt show the model the expected answers")
    if case.examples < 50:
        give("few_shot", 2.5, f"only {case.examples} labelled examples: too few to fine-tune reliably, enough to show")
    elif case.examples >= 200:
        give("fine_tuned", 1, f"{case.examples} labelled examples are plenty for a LoRA adapter")
    if case.hallucination_tolerance == "low" and case.has_documents:
        give("rag", 1.5, "low tolerance for hallucination: answers grounded in retrieved text can be checked")
    if case.inference_budget == "low":
        give("fine_tuned", 1, "a low inference budget favours short prompts: a fine-tuned model needs no examples")
        give("few_shot", -1, "examples in every prompt cost tokens on every query")
        give("rag", -0.5, "retrieved context costs prompt tokens on every query")
    if not case.can_train:
        points["fine_tuned"] = float("-inf")
        reasons["fine_tuned"] = ["no hardware or time to train"]
    best = max(points, key=points.get)
    if points[best] <= 0:
        return Recommendation("zero_shot", ["nothing in the use case calls for adaptation; measure zero-shot first"])
    runner_up = sorted((p, m) for m, p in points.items() if m != best)[-1][1]
    return Recommendation(best, reasons[best] + [f"run `tuneforge compare` to check it against {runner_up} "
                                                 "on your own data"])


def compare_config(case: UseCase, *, train: str, eval_set: str, documents: list[str], run_dir: str) -> dict:
    """A config that both trains a LoRA artefact (`tuneforge train`) and checks the advice empirically
    (`tuneforge compare`) on the user's own data."""
    strategies = ["zero_shot", "few_shot"] + (["rag"] if case.has_documents else [])
    eval_section: dict = {
        "datasets": [{"path": eval_set}],
        "metrics": ["contains", "rouge_l", "exact_match"] if case.task == "knowledge"
        else ["exact_match", "rouge_l", "chrf", "json_valid"],
        "icl": {"k": 4, "selection": "similar"},
        "compare": {"strategies": strategies, "knowledge_changes_often": case.knowledge_changes_often,
                    "hallucination_tolerance": case.hallucination_tolerance},
        "output_dir": "evals/compare",
    }
    if case.can_train:
        eval_section["compare"]["adapters"] = {"lora": run_dir}
    if case.has_documents:
        eval_section["rag"] = {"documents": documents or ["docs/"], "top_k": 3}
    if case.inference_budget == "low":
        eval_section["compare"]["max_prompt_tokens"] = 256
    return {"model": {"name_or_path": "smollm2-135m-instruct"}, "data": train,
            "method": {"name": "lora", "r": 16, "alpha": 32, "target_modules": "all-linear"},
            "train": {"output_dir": run_dir, "epochs": 2, "learning_rate": 1.0e-3}, "eval": eval_section}
