"""Preference pairs: k candidate replies per prompt, from the teacher alone or split between the teacher
and a second model (e.g. the user's current fine-tune), each scored 1-10 by a judge; the best becomes
`chosen` and the worst `rejected`. A prompt whose candidates the judge cannot tell apart (a margin below
`min_margin`), or could not score, is removed with that reason: a pair with no real preference teaches DPO
nothing."""

from __future__ import annotations

from tuneforge.datagen.common import Judge, OnProgress, load_prompts, make_client, provenance, sampling
from tuneforge.datagen.output import Output
from tuneforge.datagen.recipe import Recipe
from tuneforge.llm_client import LLMError, ResponseCache
from tuneforge.types import Message, Sample


def run_preferences(recipe: Recipe, out: Output, cache: ResponseCache, on_progress: OnProgress) -> dict:
    cfg = recipe.preferences
    assert cfg is not None
    prompts = [(p.id, p.messages) for p in load_prompts(cfg.prompts, cfg.system)]
    sources = [(recipe.teacher, make_client(recipe.teacher, cache))]
    if cfg.second is not None:
        sources.append((cfg.second, make_client(cfg.second, cache)))
    per_source = [cfg.candidates // len(sources) + (s < cfg.candidates % len(sources)) for s in range(len(sources))]
    # candidates[i]: (text, model) for prompt i; errors[i]: the first failure
    candidates: list[list[tuple[str, str]]] = [[] for _ in prompts]
    errors: dict[int, str] = {}
    for (endpoint, client), n in zip(sources, per_source):
        requests = [(messages, sampling(endpoint, i, n=n)) for i, (_, messages) in enumerate(prompts)]
        for i, reply in client.map(requests):
            if isinstance(reply, LLMError):
                errors.setdefault(i, str(reply))
            else:
                candidates[i] += [(t.strip(), endpoint.model) for t in reply.texts]
    judge = Judge.build(cfg.judge or recipe.teacher, cache)
    to_judge = [i for i in range(len(prompts)) if i not in errors and len({t for t, _ in candidates[i] if t}) >= 2]
    # every candidate of every prompt in one batch, `concurrency` judge requests in flight
    slots = [(i, k) for i in to_judge for k in range(len(candidates[i]))]
    scores: dict[int, list[int | None]] = {i: [None] * len(candidates[i]) for i in to_judge}
    questions = [(str(prompts[i][1][-1]["content"]), candidates[i][k][0], None) for i, k in slots]
    for n, score in judge.scores(questions):
        i, k = slots[n]
        scores[i][k] = None if isinstance(score, LLMError) else score
    for i, (pid, messages) in enumerate(prompts):
        reject = {"prompt": messages, "candidates": candidates[i]}
        if i in errors:
            out.fail(pid, errors[i], reject)
        elif i not in scores:
            out.remove(pid, "identical_candidates", reject)
        else:
            _pair(recipe, cfg.min_margin, out, pid, messages, candidates[i], scores[i])
        on_progress(i + 1, len(prompts), sources[0][1].usage.as_dict())
    usage = [c.usage.as_dict() for _, c in sources] + [judge.client.usage.as_dict()]
    return {"prompts": len(prompts), "candidates": cfg.candidates, "models": [e.model for e, _ in sources],
            "usage": {k: sum(u[k] for u in usage) for k in usage[0]}}


def _pair(recipe: Recipe, min_margin: int, out: Output, pid: str, messages, candidates: list[tuple[str, str]],
          scores: list[int | None]) -> None:
    scored = [(s, k) for k, s in enumerate(scores) if s is not None and candidates[k][0]]
    reject = {"prompt": messages, "candidates": candidates, "scores": scores}
    if len(scored) < 2:
        out.remove(pid, "judge_unparsable", reject)
        return
    best_score, best = max(scored, key=lambda sk: (sk[0], -sk[1]))
    worst_score, worst = min(scored, key=lambda sk: (sk[0], sk[1]))
    if best_score - worst_score < max(min_margin, 1) or best == worst:
        out.remove(pid, "scores_tied", reject, f"best {best_score}, worst {worst_score}")
        return
    prompt = [Message(m["role"], m["content"]) for m in messages]
    meta = provenance(recipe, recipe.teacher, prompt_id=pid, scores={"chosen": best_score, "rejected": worst_score},
                      all_scores=scores, chosen_model=candidates[best][1], rejected_model=candidates[worst][1])
    out.keep(Sample(prompt, chosen=[Message("assistant", candidates[best][0])],
                    rejected=[Message("assistant", candidates[worst][0])], id=pid, meta=meta))
