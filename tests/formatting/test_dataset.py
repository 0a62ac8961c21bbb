"""Dataset tokenisation: counts that add up, parallel == in-process, and the on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file

from tuneforge.config import TemplateConfig
from tuneforge.errors import TuneforgeError
from tuneforge.formatting import IGNORE, Encoder, tokenize_samples
from tuneforge.types import Message, Sample


def chat(i: int, reply: str = "ok") -> Sample:
    return Sample(messages=[Message("user", f"question {i}"), Message("assistant", f"{reply} {i}")],
                  meta={"source": "data.jsonl", "line": i + 1})


def mixed() -> list[Sample]:
    return [chat(0), Sample(text="a document"), Sample(messages=[Message("user", "no reply")]),
            chat(3, reply="x" * 200), chat(4)]


CFG = TemplateConfig(name="chatml", cutoff_len=60)


def test_counts_add_up_and_rejects_name_their_source(char_tokenizer, tmp_path):
    ds, stats = tokenize_samples(mixed(), char_tokenizer, CFG, cache_dir=tmp_path)
    assert stats.samples == 5 and stats.kept == 3 == len(ds)
    assert stats.dropped == {"no_trained_tokens": 1, "too_long": 1}
    assert stats.samples == stats.kept + sum(stats.dropped.values())
    assert [(r.index, r.where, r.reason) for r in stats.rejects] == [
        (2, "<memory>", "no_trained_tokens"), (3, "data.jsonl:4", "too_long")]
    assert list(ds.source_index) == [0, 1, 4]
    assert stats.tokens == int(ds.lengths.sum()) == sum(len(ds["input_ids"][i]) for i in range(3))
    assert stats.trained_tokens == sum(int((ds[i]["labels"] != IGNORE).sum()) for i in range(3))
    assert stats.stop_trained == 3  # every kept sample ends its training on a special token


def test_rows_equal_single_sample_encoding(char_tokenizer, tmp_path):
    ds, _ = tokenize_samples(mixed(), char_tokenizer, CFG, cache_dir=tmp_path)
    encoder = Encoder.create(char_tokenizer, CFG)
    for row, i in enumerate(ds.source_index):
        enc = encoder.encode(mixed()[i])
        assert ds[row]["input_ids"].tolist() == enc.input_ids and ds["labels"][row].tolist() == enc.labels


def test_parallel_equals_in_process(char_tokenizer):
    samples = [chat(i) for i in range(40)] + mixed()
    one, s1 = tokenize_samples(samples, char_tokenizer, CFG, num_proc=1, use_cache=False)
    two, s2 = tokenize_samples(samples, char_tokenizer, CFG, num_proc=2, use_cache=False)
    assert s1 == s2
    assert np.array_equal(one.source_index, two.source_index)
    for name in one.columns:
        assert np.array_equal(one[name].values, two[name].values)
        assert np.array_equal(one[name].offsets, two[name].offsets)


def test_second_run_reuses_the_cache(char_tokenizer, tmp_path, monkeypatch):
    first, s1 = tokenize_samples(mixed(), char_tokenizer, CFG, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1 and not s1.from_cache
    load_file(str(files[0]))  # plain safetensors arrays, no pickle

    def fail(*_):
        raise AssertionError("encoded again instead of reading the cache")

    monkeypatch.setattr(Encoder, "encode", fail)
    again, s2 = tokenize_samples(mixed(), char_tokenizer, CFG, cache_dir=tmp_path)
    assert s2.from_cache and s2.rejects == s1.rejects and s2.dropped == s1.dropped
    assert np.array_equal(again["input_ids"].values, first["input_ids"].values)
    assert np.array_equal(again.source_index, first.source_index)


@pytest.mark.parametrize("change", ["data", "name", "cutoff_len", "cutoff_policy", "train_on", "system", "jinja",
                                    "tokenizer"])
def test_changing_any_key_part_misses(change, char_tokenizer, make_char_tokenizer, tmp_path):
    tokenize_samples(mixed(), char_tokenizer, CFG, cache_dir=tmp_path)
    samples, tokenizer, cfg = mixed(), char_tokenizer, CFG
    if change == "data":
        samples[0].messages[1].content = "changed"
    elif change == "tokenizer":
        tokenizer = make_char_tokenizer(eos="<|im_end|>")
    else:
        value = {"name": "qwen", "cutoff_len": 61, "cutoff_policy": "drop", "train_on": "all", "system": "Hi.",
                 "jinja": "{{ messages[0].content }}{% if add_generation_prompt %}>{% endif %}"}[change]
        cfg = CFG.model_copy(update={change: value})
    _, stats = tokenize_samples(samples, tokenizer, cfg, cache_dir=tmp_path)
    assert not stats.from_cache
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


def test_least_recently_used_entries_are_evicted_over_the_limit(char_tokenizer, tmp_path, monkeypatch):
    import os

    def tokenize(answer: str):
        samples = mixed()
        samples[0].messages[1].content = answer
        tokenize_samples(samples, char_tokenizer, CFG, cache_dir=tmp_path)

    entries = {}
    for answer in "ab":
        before = set(tmp_path.glob("*.safetensors"))
        tokenize(answer)
        (entries[answer],) = set(tmp_path.glob("*.safetensors")) - before
    os.utime(entries["a"], (1, 1))
    os.utime(entries["b"], (2, 2))
    tokenize("a")  # a cache hit: "a" is now the most recently used
    monkeypatch.setenv("TUNEFORGE_TOKEN_CACHE_MB", str(2.5 * entries["a"].stat().st_size / 2**20))  # two fit
    tokenize("c")
    assert entries["a"].exists() and not entries["b"].exists()
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


def test_default_cache_dir_follows_tuneforge_cache(char_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path))
    tokenize_samples(mixed(), char_tokenizer, CFG)
    assert len(list((tmp_path / "tokenized").glob("*.safetensors"))) == 1


def test_preference_columns(char_tokenizer, tmp_path):
    pair = Sample(messages=[Message("user", "q")], chosen=[Message("assistant", "good")],
                  rejected=[Message("assistant", "bad")])
    ds, stats = tokenize_samples([pair, pair], char_tokenizer, CFG, cache_dir=tmp_path)
    assert ds.kind == "preference" and len(ds) == 2 and stats.kept == 2
    assert set(ds[0]) == {"prompt_ids", "chosen_ids", "chosen_labels", "rejected_ids", "rejected_labels"}
    assert ds.lengths.tolist() == [len(ds[0]["prompt_ids"]) + len(ds[0]["chosen_ids"])] * 2
    cached, _ = tokenize_samples([pair, pair], char_tokenizer, CFG, cache_dir=tmp_path)
    assert cached.kind == "preference" and cached[1]["rejected_labels"].tolist() == ds[1]["rejected_labels"].tolist()


def test_mixing_pairs_with_other_samples_is_an_error(char_tokenizer):
    pair = Sample(messages=[Message("user", "q")], chosen=[Message("assistant", "a")],
                  rejected=[Message("assistant", "b")])
    with pytest.raises(TuneforgeError, match="mixes preference pairs"):
        tokenize_samples([pair, chat(1)], char_tokenizer, CFG, use_cache=False)


def test_empty_input(char_tokenizer, tmp_path):
    ds, stats = tokenize_samples([], char_tokenizer, CFG, cache_dir=tmp_path)
    assert len(ds) == 0 and stats.samples == 0
    ds, stats = tokenize_samples([], char_tokenizer, CFG, cache_dir=tmp_path)
    assert stats.from_cache and len(ds["input_ids"]) == 0
