"""Self-Instruct (Wang et al., 2023): show the teacher a few seed tasks, ask for new ones, drop near-copies
of every instruction so far (ROUGE-L >= 0.7, seeds included) and instructions a language model cannot act
on, then have the teacher answer each kept one.

Prompts go out `concurrency` at a time; their replies are filtered in prompt order, so which instruction
counts as the near-copy of which is the same on every run, and a resumed run (every answered request
from the cache) makes exactly the same decisions.
"""

from __future__ import annotations

import math
import random
import re
import zlib

from tuneforge.datagen.common import (
    InstructionChecks,
    OnProgress,
    instruction_of,
    make_client,
    provenance,
    read_records,
    sampling,
)
from tuneforge.datagen.near_dup import RougeIndex
from tuneforge.datagen.output import Output
from tuneforge.datagen.recipe import Recipe, SelfInstruct
from tuneforge.llm_client import LLMClient, LLMError, ResponseCache
from tuneforge.types import Message, Sample

PROMPT = ("Here are some tasks people ask an AI assistant to do:\n{examples}\n"
          "Write {count} more new and different tasks in the same style, as a numbered list starting at {next}, "
          "one task per line.")
TASKS_PER_PROMPT = 5
EMPTY = "empty_answer"

_ITEM = re.compile(r"^\s*(?:\d+\s*[.):]|[-*•])\s*(.+?)\s*$")
_LEAD = re.compile(r"^(?:\d+\s*[.):]\s*|(?:task|instruction)\s*\d*\s*[:.\-]\s*|[A-Z]\s*:\s*)+", re.IGNORECASE)


def parse_tasks(reply: str) -> list[str]:
    """The tasks of a numbered or bulleted list in a reply; lines that are not list items are prose around it."""
    out = []
    for line in reply.splitlines():
        match = _ITEM.match(line)
        if not match:
            continue
        task = _LEAD.sub("", match.group(1).replace("**", "")).strip().strip("\"'“”").strip()
        if task:
            out.append(task)
    return out


def round_size(concurrency: int, missing: int, kept: int, prompts_sent: int) -> int:
    """Prompts for the next round: `concurrency`, or fewer when the examples kept per prompt so far say
    fewer will do (with a fifth to spare), so the last round does not overshoot `num_examples` by much."""
    if prompts_sent == 0 or kept == 0 or missing <= 0:
        return concurrency
    return max(1, min(concurrency, math.ceil(1.2 * missing * prompts_sent / kept)))


def build_prompt(examples: list[str], count: int = TASKS_PER_PROMPT) -> str:
    listed = "".join(f"{i + 1}. {' '.join(t.split())}\n" for i, t in enumerate(examples))
    return PROMPT.format(examples=listed, count=count, next=len(examples) + 1)


def run_self_instruct(recipe: Recipe, out: Output, cache: ResponseCache, on_progress: OnProgress) -> dict:
    cfg = recipe.self_instruct
    assert cfg is not None
    seeds = read_records(cfg.seeds, "seeds")
    seed_texts = [instruction_of(s) for s in seeds]
    seed_ids = [s.id or f"seed-{i}" for i, s in enumerate(seeds)]
    teacher = make_client(recipe.teacher, cache)
    index = RougeIndex(cfg.rouge_threshold)
    for text in seed_texts:
        index.add(text)
    checks = InstructionChecks(cfg.filters)
    k = min(cfg.seeds_per_prompt, len(seeds))
    prompts_sent = 0
    # a resumed run replays at least every prompt whose tasks an earlier run wrote, so the counts cover them
    written = [int(i.split("-")[1]) for i in (*out.written, *out.rejected) if i.startswith("si-")]
    replay = max(written, default=-1) + 1
    while (out.stats.kept < cfg.num_examples or prompts_sent < replay) and prompts_sent < cfg.max_prompts:
        size = max(round_size(recipe.teacher.concurrency, cfg.num_examples - out.stats.kept, out.stats.kept,
                              prompts_sent), replay - prompts_sent)
        round_ids = range(prompts_sent, min(prompts_sent + size, cfg.max_prompts))
        chosen = {i: random.Random(f"{recipe.seed}-{i}").sample(range(len(seeds)), k) for i in round_ids}
        requests = [([{"role": "user", "content": build_prompt([seed_texts[j] for j in chosen[i]])}],
                     sampling(recipe.teacher, i)) for i in round_ids]
        replies = dict(teacher.map(requests))
        prompts_sent = round_ids.stop
        new: list[tuple[str, str, dict]] = []  # (id, instruction, meta) kept so far this round
        for offset, i in enumerate(round_ids):
            reply, used = replies[offset], [seed_ids[j] for j in chosen[i]]
            if isinstance(reply, LLMError):
                out.fail(f"si-{i}", str(reply), {"prompt": requests[offset][0], "seed_ids": used})
                continue
            tasks = parse_tasks(reply.text)
            if not tasks:
                out.remove(f"si-{i}", "no_tasks_in_reply", {"reply": reply.text, "seed_ids": used})
            for j, task in enumerate(tasks):
                record_id = f"si-{i}-{j}"
                earlier = out.earlier_decision(record_id)
                if earlier is None:  # decide now
                    if reason := checks.reason(task):
                        out.remove(record_id, reason, {"instruction": task})
                        continue
                    score, near = index.nearest(task)
                    if near is not None:
                        out.remove(record_id, "near_copy", {"instruction": task},
                                   f"ROUGE-L {score:.2f} with: {index.texts[near][:200]}")
                        continue
                elif earlier not in ("kept", EMPTY):  # removed before it was indexed
                    out.remove(record_id, earlier, {"instruction": task})
                    continue
                else:
                    score = 0.0
                index.add(task)
                new.append((record_id, task, {"seed_ids": used, "prompt_index": i, "rouge_l_max": round(score, 4)}))
        _answer(recipe, cfg, teacher, out, new)
        on_progress(min(out.stats.kept, cfg.num_examples), cfg.num_examples, teacher.usage.as_dict())
    return {"prompts": prompts_sent, "seeds": len(seeds), "rouge_comparisons": index.compared,
            "usage": teacher.usage.as_dict()}


def _answer(recipe: Recipe, cfg: SelfInstruct, teacher: LLMClient, out: Output,
            new: list[tuple[str, str, dict]]) -> None:
    if not cfg.answer:
        for record_id, task, meta in new:
            out.keep(Sample([Message("user", task)], id=record_id, meta=provenance(recipe, recipe.teacher, **meta)))
        return
    limit = cfg.answer_max_tokens or recipe.teacher.max_tokens
    requests = [([{"role": "user", "content": task}],
                 sampling(recipe.teacher, zlib.crc32(record_id.encode()), max_tokens=limit))
                for record_id, task, _ in new]
    for n, reply in sorted(teacher.map(requests), key=lambda item: item[0]):
        record_id, task, meta = new[n]
        if isinstance(reply, LLMError):
            out.fail(record_id, str(reply), {"instruction": task})
        elif not reply.text.strip():
            out.remove(record_id, EMPTY, {"instruction": task})
        else:
            meta = {**meta, "finish_reason": reply.finish_reasons[0]}
            out.keep(Sample([Message("user", task), Message("assistant", reply.text.strip())], id=record_id,
                            meta=provenance(recipe, recipe.teacher, **meta)))

