"""The ROUGE-L index finds exactly what comparing against every instruction finds, with far fewer
exact comparisons."""

from __future__ import annotations

import random

from tuneforge.datagen.near_dup import RougeIndex
from tuneforge.datagen.self_instruct import parse_tasks
from tuneforge.eval.overlap import rouge_l

WORDS = "write explain list give the a of to poem story summary three tips about sea city cat code test".split()


def test_the_index_agrees_with_brute_force():
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(3, 9))) for _ in range(300)]
    index, kept = RougeIndex(0.7), []
    for text in texts:
        best, near = index.nearest(text)
        brute = max((rouge_l(text, k) for k in kept), default=0.0)
        assert (near is not None) == (brute >= 0.7), text
        if near is not None:
            assert best == brute and rouge_l(text, kept[near]) == brute
        else:
            index.add(text)
            kept.append(text)
    pairs = sum(range(len(kept)))  # what comparing each new text with all the kept ones costs
    assert 20 < len(kept) < 300 and index.compared < pairs / 2


def test_parse_tasks_reads_numbered_and_bulleted_lists_only():
    reply = ("Here are five new tasks:\n\n4. Write a poem.\n5) **Task 5**: Plan a trip\n- \"Name a river.\"\n"
             "6. 6. Count to ten.\nThat is all.\n7. Task 7: Sort these numbers.")
    assert parse_tasks(reply) == ["Write a poem.", "Plan a trip", "Name a river.", "Count to ten.",
                                  "Sort these numbers."]


def test_rounds_shrink_to_what_the_yield_so_far_says_is_missing():
    from tuneforge.datagen.self_instruct import round_size

    assert round_size(24, missing=50, kept=0, prompts_sent=0) == 24  # nothing to go by yet
    assert round_size(24, missing=10, kept=40, prompts_sent=24) == 8  # 1.67 kept a prompt: 6, and a fifth
    assert round_size(24, missing=45, kept=5, prompts_sent=24) == 24  # a low yield: as many as allowed
    assert round_size(24, missing=1, kept=49, prompts_sent=24) == 1
