"""Evol-Instruct (Xu et al., 2023, WizardLM): the teacher rewrites each seed instruction into a harder one
(in depth: add constraints, deepen, concretise, ask for more reasoning) or a new one on a rarer topic (in
breadth), `rounds` times, then answers it. An evolution is eliminated, as in the paper, when:
- it brings no new information (`no_new_information`: ROUGE-L >= 0.9 with the instruction it came from);
- the teacher cannot answer it (`teacher_cannot_answer`: a short reply with "sorry" in it);
- the answer is only punctuation and stop words (`empty_answer`);
- it copies words of the rewriting prompt (`copied_prompt_words`: "#Rewritten Prompt#", "given prompt" ...);
and, like every generated instruction, when it fails the length / blocklist / language checks.
An eliminated instruction's chain stops; each round's survivors go on to the next round.
"""

from __future__ import annotations

import random
import re

from tuneforge.datagen.common import (
    InstructionChecks,
    OnProgress,
    instruction_of,
    make_client,
    provenance,
    read_records,
    sampling,
)
from tuneforge.datagen.output import Output
from tuneforge.datagen.recipe import Recipe
from tuneforge.eval.overlap import rouge_l
from tuneforge.llm_client import LLMError, ResponseCache
from tuneforge.types import Message, Sample

_DEPTH = ("I want you to act as a Prompt Rewriter. Rewrite the given prompt into a more complex version that a "
          "person can still understand and answer. {how} The rewritten prompt may add at most 10 to 20 words. "
          "Reply with the rewritten prompt only.\n\nGiven prompt: {instruction}\n\nRewritten prompt:")
HOW = {
    "constraints": "Add one more constraint or requirement.",
    "deepen": "Make the question ask about the issue in more depth and breadth.",
    "concretize": "Replace general concepts with more specific ones.",
    "reasoning": "Make it explicitly ask for reasoning in several steps.",
}
BREADTH = ("I want you to act as a Prompt Creator. Write a brand new prompt in the same domain as the given "
           "prompt but on a rarer topic, of similar length and difficulty. Reply with the new prompt only.\n\n"
           "Given prompt: {instruction}\n\nNew prompt:")

_COPIED = re.compile(r"#?\s*(?:rewritten|given|new|created)\s*prompt\s*#?|prompt rewriter|prompt creator",
                     re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:#?\s*(?:rewritten|new|created)\s+prompt\s*#?\s*[:：]\s*)", re.IGNORECASE)
_STOP = frozenset("the a an and or of to in is are it this that be for on with as at by i you".split())


def evolution_prompt(operation: str, instruction: str) -> str:
    if operation == "breadth":
        return BREADTH.format(instruction=instruction)
    return _DEPTH.format(how=HOW[operation], instruction=instruction)


def clean_rewrite(reply: str) -> str:
    """The rewritten instruction: the reply without a leading 'Rewritten prompt:' label or quotes."""
    text = _LABEL.sub("", reply.strip()).strip().strip("\"'“”").strip()
    return text


def elimination(parent: str, child: str) -> str | None:
    """Why an evolved instruction is eliminated before it is answered, or None."""
    if _COPIED.search(child):
        return "copied_prompt_words"
    if child.strip().lower() == parent.strip().lower() or rouge_l(child, parent) >= 0.9:
        return "no_new_information"
    return None


def answer_elimination(answer: str) -> str | None:
    words = re.findall(r"\w+", answer.lower())
    if not [w for w in words if w not in _STOP]:
        return "empty_answer"
    if "sorry" in words and len(words) < 80:
        return "teacher_cannot_answer"
    return None


def run_evolve(recipe: Recipe, out: Output, cache: ResponseCache, on_progress: OnProgress) -> dict:
    cfg = recipe.evolve
    assert cfg is not None
    seeds = read_records(cfg.seeds, "seeds")
    teacher = make_client(recipe.teacher, cache)
    checks = InstructionChecks(cfg.filters)
    # the chains still evolving: (seed id, current instruction, operations so far)
    active: list[tuple[str, str, list[str]]] = [(s.id or f"seed-{i}", instruction_of(s), [])
                                                for i, s in enumerate(seeds)]
    total = len(active) * cfg.rounds
    done = 0
    for r in range(cfg.rounds):
        ops = [random.Random(f"{recipe.seed}-{sid}-{r}").choice(cfg.operations) for sid, _, _ in active]
        prompts = [evolution_prompt(op, text) for (_, text, _), op in zip(active, ops)]
        requests = [([{"role": "user", "content": p}], sampling(recipe.teacher, r * 100_003 + i))
                    for i, p in enumerate(prompts)]
        rewrites = dict(teacher.map(requests))
        candidates = []
        for i, (sid, parent, history) in enumerate(active):
            record_id, reply = f"evol-{sid}-r{r + 1}", rewrites[i]
            if isinstance(reply, LLMError):
                out.fail(record_id, str(reply), {"instruction": parent, "operation": ops[i]})
                continue
            child = clean_rewrite(reply.text)
            reason = elimination(parent, child) or checks.reason(child)
            if reason:
                out.remove(record_id, reason, {"instruction": parent, "evolved": child, "operation": ops[i]})
                continue
            candidates.append((record_id, sid, parent, child, [*history, ops[i]]))
        answers = dict(teacher.map([([{"role": "user", "content": c[3]}], sampling(recipe.teacher, 7_000_003 + n))
                                    for n, c in enumerate(candidates)])) if candidates else {}
        active = []
        for n, (record_id, sid, parent, child, history) in enumerate(candidates):
            reply = answers[n]
            reject = {"instruction": parent, "evolved": child, "operations": history}
            if isinstance(reply, LLMError):
                out.fail(record_id, str(reply), reject)
                continue
            if reason := answer_elimination(reply.text):
                out.remove(record_id, reason, {**reject, "answer": reply.text})
                continue
            meta = provenance(recipe, recipe.teacher, seed_ids=[sid], round=r + 1, operations=history, parent=parent)
            out.keep(Sample([Message("user", child), Message("assistant", reply.text.strip())], id=record_id,
                            meta=meta))
            active.append((sid, child, history))
        done += len(requests)
        on_progress(done, total, teacher.usage.as_dict())
    return {"seeds": len(seeds), "rounds": cfg.rounds, "usage": teacher.usage.as_dict()}
