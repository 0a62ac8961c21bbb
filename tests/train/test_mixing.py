from collections import Counter

import pytest

from tuneforge.config import DataConfig
from tuneforge.train.mixing import add_replay, mix, mixture_shares, with_prefix
from tuneforge.types import Message, Sample


def _task(name, n):
    return [Sample([Message("user", f"{name} {i}"), Message("assistant", "ok")], task=name) for i in range(n)]


def _data(mix_kind, **kw):
    return DataConfig.model_validate({"datasets": [{"path": "a", "task": "a", **kw.get("a", {})},
                                                   {"path": "b", "task": "b", **kw.get("b", {})}],
                                      "mix": mix_kind, "temperature": kw.get("t", 2.0)})


def test_concat_keeps_everything_once():
    out = mix([_task("a", 3), _task("b", 5)], _data("concat"), seed=0)
    assert Counter(s.task for s in out) == {"a": 3, "b": 5}


def test_weights_resample_to_shares_keeping_epoch_size():
    out = mix([_task("a", 10), _task("b", 90)], _data("weights", a={"weight": 1}, b={"weight": 1}), seed=0)
    assert len(out) == 100
    assert Counter(s.task for s in out) == {"a": 50, "b": 50}
    # the small task is repeated in whole shuffled copies: each sample 5 times
    assert set(Counter(s.messages[0].content for s in out if s.task == "a").values()) == {5}


def test_temperature_lifts_small_tasks():
    shares = mixture_shares([10, 90], _data("temperature").datasets, _data("temperature", t=2.0))
    assert shares == pytest.approx([10 ** 0.5 / (10 ** 0.5 + 90 ** 0.5), 90 ** 0.5 / (10 ** 0.5 + 90 ** 0.5)])
    assert mixture_shares([10, 90], _data("temperature").datasets,
                          _data("temperature", t=1.0)) == pytest.approx([0.1, 0.9])


def test_instruction_prefix_goes_before_the_first_user_turn():
    s = Sample([Message("system", "sys"), Message("user", "hello"), Message("assistant", "hi")])
    assert [m.content for m in with_prefix(s, "Task A: ").messages] == ["sys", "Task A: hello", "hi"]
    out = mix([_task("a", 1), _task("b", 1)], _data("concat", a={"instruction_prefix": "[A] "}), seed=0)
    assert [s.messages[0].content for s in out] == ["[A] a 0", "b 0"]


def test_replay_share():
    domain, general = _task("d", 90), _task("g", 7)
    out = add_replay(domain, general, share=0.1, seed=0)
    assert Counter(s.task for s in out) == {"d": 90, "g": 10}
