"""Distillation: the teacher answers the user's prompts, n samples each (one request with n). With
`select: reward` or `select: judge` only the best sample of each prompt is kept (rejection sampling /
best-of-n); the others are removed as `not_best`, so every sample generated is accounted for.

Rewards are `tuneforge.eval.rewards`, as GRPO takes them: any evaluation metric (json_schema, regex,
exact_match, rouge_l ...; reference-based ones compare with the prompt's own reply when its record has one),
length and format checks, a judge, your own function, summed by weight.
"""

from __future__ import annotations

import json

from tuneforge.datagen.common import Judge, OnProgress, Prompt, load_prompts, make_client, provenance, sampling
from tuneforge.datagen.output import Output
from tuneforge.datagen.recipe import Distill, Recipe
from tuneforge.llm_client import LLMError, Reply, ResponseCache, json_objects
from tuneforge.types import Message, Sample

JSON_REWARDS = ("json_schema", "json_valid")


def _is_json(text: str) -> bool:
    from tuneforge.eval.metrics import parse_json_answer

    try:
        parse_json_answer(text)
    except ValueError:
        return False
    return True


def _first_json(text: str) -> str:
    """The first JSON object of a reply, written compactly, or the reply itself when it holds none."""
    obj = next(json_objects(text), None)
    return text if obj is None else json.dumps(obj, ensure_ascii=False)


def _rewards(cfg: Distill):
    from tuneforge.eval.rewards import build_rewards

    assert cfg.reward is not None
    return build_rewards(cfg.reward)


def run_distill(recipe: Recipe, out: Output, cache: ResponseCache, on_progress: OnProgress) -> dict:
    cfg = recipe.distill
    assert cfg is not None
    prompts = load_prompts(cfg.prompts, cfg.system)
    teacher = make_client(recipe.teacher, cache)
    rewards = _rewards(cfg) if cfg.select == "reward" else None
    judge = Judge.build(cfg.judge or recipe.teacher, cache) if cfg.select == "judge" else None
    requests = [(p.messages, sampling(recipe.teacher, i, n=cfg.samples)) for i, p in enumerate(prompts)]
    replies: dict[int, Reply | LLMError] = {}

    def finish(i: int, judged: list[float | None] | None = None) -> None:
        prompt, reply = prompts[i], replies[i]
        if isinstance(reply, LLMError):
            for k in range(cfg.samples):
                out.fail(f"{prompt.id}-s{k}", str(reply), {"prompt": prompt.messages})
            return
        texts = _texts(cfg, reply)
        if judged is None:
            judged = _rewarded(rewards, prompt, texts) if rewards is not None else [None] * len(texts)
        _select(recipe, cfg, out, prompt, texts, reply.finish_reasons, judged)

    for i, reply in teacher.map(requests):
        replies[i] = reply
        if judge is None:  # scored at once, written as the replies come
            finish(i)
        on_progress(len(replies), len(prompts), teacher.usage.as_dict())
    if judge is not None:  # every sample of every prompt judged in one batch, then written in prompt order
        for i, judged in _judged(judge, prompts, replies, cfg).items():
            finish(i, judged)
    usage = teacher.usage.as_dict()
    if judge is not None:
        usage = {k: v + judge.client.usage.as_dict()[k] for k, v in usage.items()}
    return {"prompts": len(prompts), "samples_per_prompt": cfg.samples, "select": cfg.select, "usage": usage}


def _texts(cfg: Distill, reply: Reply) -> list[str]:
    return [_first_json(t) for t in reply.texts] if cfg.extract == "json" else reply.texts


def _rewarded(rewards, prompt: Prompt, texts: list[str]) -> list[float | None]:
    n = len(texts)
    return list(rewards(texts, [prompt.reference] * n, [str(prompt.messages[-1]["content"])] * n).total)


def _judged(judge: Judge, prompts: list[Prompt], replies: dict[int, Reply | LLMError],
            cfg: Distill) -> dict[int, list[float | None] | None]:
    """Judge scores of every sample by prompt index (None for a prompt whose request failed)."""
    texts = {i: _texts(cfg, r) for i, r in replies.items() if not isinstance(r, LLMError)}
    slots = [(i, k) for i in sorted(texts) for k in range(len(texts[i]))]
    out: dict[int, list[float | None] | None] = {i: None for i in range(len(prompts))}
    out.update({i: [None] * len(t) for i, t in texts.items()})
    questions = [(str(prompts[i].messages[-1]["content"]), texts[i][k], prompts[i].reference) for i, k in slots]
    for n, score in judge.scores(questions):
        i, k = slots[n]
        scores = out[i]
        assert scores is not None
        scores[k] = None if isinstance(score, LLMError) or score is None else float(score)
    return out


def _select(recipe: Recipe, cfg: Distill, out: Output, source: Prompt, texts: list[str], finish: list[str | None],
            scores: list[float | None]) -> None:
    pid, messages = source.id, source.messages
    prompt = [Message(m["role"], m["content"]) for m in messages]
    scored = [s for s in scores if s is not None]
    json_needed = next((r.name for r in cfg.reward or [] if r.name in JSON_REWARDS),
                       "extract: json" if cfg.extract == "json" else None)
    best = max(range(len(texts)), key=lambda k: (scores[k] is not None, scores[k] or 0.0, -k)) if texts else None
    for k, text in enumerate(texts):
        record_id = f"{pid}-s{k}"
        reject = {"prompt": messages, "reply": text, "score": scores[k]}
        if not text.strip():
            out.remove(record_id, "empty_reply", reject)
        elif json_needed and not _is_json(text):
            out.remove(record_id, "reply_not_json", reject, f"{json_needed} needs JSON; the reply: {text[:120]}")
        elif cfg.select != "all" and not scored:
            out.remove(record_id, "judge_unparsable" if cfg.select == "judge" else "no_score", reject)
        elif cfg.min_reward is not None and (scores[k] or 0.0) < cfg.min_reward:
            out.remove(record_id, "below_min_reward", reject, f"reward {scores[k]} < {cfg.min_reward}")
        elif cfg.select != "all" and k != best:
            out.remove(record_id, "not_best", reject)
        else:
            meta = provenance(recipe, recipe.teacher, prompt_id=pid, source_id=source.source_id, sample=k,
                              samples=len(texts), finish_reason=finish[k] if k < len(finish) else None,
                              scores={("reward" if cfg.select == "reward" else "judge"): scores[k]}
                              if cfg.select != "all" else {}, all_scores=scores if cfg.select != "all" else None)
            out.keep(Sample([*prompt, Message("assistant", text.strip())], id=record_id, meta=meta))
