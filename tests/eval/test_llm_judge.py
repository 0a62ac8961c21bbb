"""LLM-as-judge: lenient verdict parsing (malformed replies counted invalid), the pairwise order swap,
failed requests, and the editable prompt files."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tuneforge.config import JudgeConfig
from tuneforge.errors import ConfigError
from tuneforge.eval.judge import (
    PROMPTS,
    combine_orders,
    endpoint_judge,
    load_prompt,
    pairwise,
    parse_score,
    parse_winner,
    rubric_scores,
)


@pytest.mark.parametrize("reply, expected", [
    ('{"score": 8, "reason": "good"}', 8),
    ('Sure! Here is my verdict:\n```json\n{"score": 3, "reason": "wrong city"}\n```', 3),
    ("Score: 7/10 — mostly right", 7),
    ("I would rate it **Score: 9**", 9),
    ("评分：6", 6),
    ("This deserves 4/10.", 4),
    ('{"score": 11}', None),  # out of range
    ('{"score": 0}', None),
    ('{"score": "high"}', None),
    ('{"score": 7.5}', None),  # not an integer
    ("The answer is good.", None),
    ("", None),
    ('{"score": 8', None),  # cut-off JSON, no other verdict
])
def test_parse_score(reply, expected):
    assert parse_score(reply) == expected


@pytest.mark.parametrize("reply, expected", [
    ('{"winner": "A", "reason": "correct"}', "A"),
    ('{"winner": "b"}', "B"),
    ('{"winner": "Tie"}', "tie"),
    ("[[B]]", "B"),
    ("After careful thought, the winner is: A.", "A"),
    ("胜者：B", "B"),
    ('{"winner": "C"}', None),
    ("Both answers have merit.", None),
    ("", None),
])
def test_parse_winner(reply, expected):
    assert parse_winner(reply) == expected


@pytest.mark.parametrize("first, swapped, outcome, agreed", [
    ("A", "B", "a", True),  # a wins in both positions
    ("B", "A", "b", True),
    ("A", "A", "tie", False),  # always the first position: position bias cancels to a tie
    ("B", "B", "tie", False),
    ("tie", "tie", "tie", True),
    ("A", None, "a", False),  # one order unparsable: the other decides
    (None, "A", "b", False),
    (None, None, "invalid", False),
])
def test_combine_orders(first, swapped, outcome, agreed):
    assert combine_orders(first, swapped) == (outcome, agreed)


def _fake_judge(decide):
    """A judge seeing the filled prompts; `decide(prompt)` returns its reply."""
    calls = []

    def complete(chats):
        calls.extend(chats)
        return [decide(chat[-1]["content"]) for chat in chats]

    complete.calls = calls
    return complete


def _answers(prompt):
    a = prompt.split("[Answer A]\n")[1].split("\n\n")[0]
    b = prompt.split("[Answer B]\n")[1].split("\n\n")[0]
    return a, b


def test_pairwise_asks_both_orders_and_a_fair_judge_picks_the_right_answer():
    prompt = load_prompt(None, "pairwise.txt")
    fair = _fake_judge(lambda p: '{"winner": "%s"}' % ("A" if "Paris" in _answers(p)[0] else "B"))
    result = pairwise(fair, ["Capital of France?", "法国的首都？"], ["Paris", "Paris 巴黎"], ["Lyon", "里昂"],
                      ["Paris", "巴黎"], prompt)
    assert len(fair.calls) == 4
    assert [_answers(c[0]["content"]) for c in fair.calls] == [("Paris", "Lyon"), ("Paris 巴黎", "里昂"),
                                                                ("Lyon", "Paris"), ("里昂", "Paris 巴黎")]
    assert result.outcomes == ["a", "a"] and result.consistent == 2 and result.win_rate_a == 1.0


def test_pairwise_position_bias_cancels_and_invalid_verdicts_are_counted():
    prompt = load_prompt(None, "pairwise.txt")
    biased = _fake_judge(lambda p: "[[A]]")
    result = pairwise(biased, ["q1", "q2"], ["good", "good"], ["bad", "bad"], [None, None], prompt)
    assert result.outcomes == ["tie", "tie"] and result.consistent == 0 and result.win_rate_a == 0.5
    mute = _fake_judge(lambda p: "I cannot decide.")
    result = pairwise(mute, ["q"], ["x"], ["y"], [None], prompt)
    assert result.outcomes == ["invalid"] and result.counts["invalid"] == 1 and result.win_rate_a is None


def test_rubric_counts_malformed_and_failed_verdicts_as_invalid():
    replies = iter(['{"score": 9}', "no idea", None, "Score: 4"])
    judge = lambda chats: [next(replies) for _ in chats]  # noqa: E731
    result = rubric_scores(judge, ["q1", "q2", "q3", "q4"], ["a"] * 4, ["r", None, "r", "r"],
                           load_prompt(None, "rubric.txt"))
    assert result.scores == [9, None, None, 4]
    assert result.invalid == 2 and result.mean == 6.5


def test_prompts_are_files_users_can_replace(tmp_path):
    assert {p.name for p in PROMPTS.glob("*.txt")} == {"rubric.txt", "pairwise.txt"}
    for name, keys in (("rubric.txt", ["{question}", "{reference}", "{answer}"]),
                       ("pairwise.txt", ["{question}", "{reference}", "{answer_a}", "{answer_b}"])):
        text = load_prompt(None, name)
        assert all(k in text for k in keys)
    mine = tmp_path / "strict.txt"
    mine.write_text("Grade {answer} against {reference}. JSON: {\"score\": n}")
    judge = _fake_judge(lambda p: '{"score": 2}')
    rubric_scores(judge, ["q"], ["Lyon"], ["Paris"], load_prompt(str(mine), "rubric.txt"))
    assert judge.calls[0][0]["content"] == 'Grade Lyon against Paris. JSON: {"score": n}'
    with pytest.raises(ConfigError, match="judge prompt"):
        load_prompt(str(tmp_path / "missing.txt"), "rubric.txt")


class _Handler(BaseHTTPRequestHandler):
    replies: list = []

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        status, content = self.replies.pop(0)
        body = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_endpoint_judge_over_http_counts_a_failed_request_as_invalid():
    _Handler.replies = [(200, '{"score": 7}'), (400, ""), (200, "garbage")]
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = endpoint_judge(JudgeConfig(url=f"http://127.0.0.1:{server.server_port}/v1", model="judge",
                                           retries=0, timeout=5))
        result = rubric_scores(judge, ["q"] * 3, ["a"] * 3, ["r"] * 3, load_prompt(None, "rubric.txt"))
    finally:
        server.shutdown()
    assert result.scores == [7, None, None] and result.replies[1] is None and result.invalid == 2


def test_eval_with_a_judge_endpoint_adds_rubric_scores(tiny_model_dir, tmp_path):
    from tuneforge.config import build_config
    from tuneforge.eval.runner import run_eval

    data = tmp_path / "e.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]},
                                       ensure_ascii=False) + "\n" for q, a in [("Capital of France?", "Paris"),
                                                                               ("法国的首都？", "巴黎")]))
    _Handler.replies = [(200, "Score: 6/10"), (200, "unsure")]
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run = run_eval(build_config({
            "model": {"name_or_path": str(tiny_model_dir)},
            "eval": {"datasets": [{"path": str(data)}], "output_dir": str(tmp_path / "o"), "perplexity": False,
                     "generation": {"max_new_tokens": 2}, "metrics": ["length"],
                     "judge": {"url": f"http://127.0.0.1:{server.server_port}/v1", "model": "j", "retries": 0}}}))
    finally:
        server.shutdown()
    assert [r["judge_score"] for r in run.rows] == [6, None]
    assert run.extra["judge_score"] == 6.0 and run.extra["judge_invalid"] == 1


def test_compare_judges_each_strategy_against_the_baseline_in_both_orders(tiny_model_dir, tmp_path, monkeypatch):
    from tuneforge.config import build_config
    from tuneforge.eval import judge as judge_module
    from tuneforge.eval.compare import run_compare

    data = tmp_path / "e.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]})
                            + "\n" for q, a in [("Capital of France?", "Paris"), ("2 + 2?", "4")]))
    first_position = _fake_judge(lambda p: '{"winner": "A"}' if "[Answer A]" in p else '{"score": 5}')
    monkeypatch.setattr(judge_module, "make_judge", lambda cfg: first_position)
    cfg = build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": str(data),
                        "eval": {"datasets": [{"path": str(data)}], "output_dir": str(tmp_path / "o"),
                                 "generation": {"max_new_tokens": 2}, "metrics": ["length"],
                                 "icl": {"k": 1, "selection": "random"},
                                 "compare": {"strategies": ["zero_shot", "few_shot"]},
                                 "judge": {"pairwise_baseline": "zero_shot"}}})
    runs = {r.name: r for r in run_compare(cfg).runs}
    few = runs["few_shot"].extra
    # a judge that always picks the first position: every question is a tie, no order agrees
    assert few["win_rate_vs_zero_shot"] == 0.5 and few["pairwise_consistent"] == 0 and few["pairwise_invalid"] == 0
    assert runs["zero_shot"].extra["judge_score"] == 5.0 and "win_rate_vs_zero_shot" not in runs["zero_shot"].extra
    assert len(first_position.calls) == 2 * 2 + 2 * 2  # rubric: 2 runs x 2 questions; pairwise: 2 questions x 2 orders
