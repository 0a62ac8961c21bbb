"""LLaMA-Factory dataset_info.json entries work unchanged."""

from __future__ import annotations

import pytest

from tuneforge.config import DataConfig, DatasetConfig
from tuneforge.errors import DataError
from tuneforge.io import read_samples
from tuneforge.types import Message

INFO = {
    "qa": {"file_name": "qa.json", "columns": {"prompt": "question", "query": "context", "response": "answer",
                                               "system": "sys"}},
    "chat": {"file_name": "chat.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"},
             "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}},
    "c4": {"file_name": "c4.jsonl", "columns": {"prompt": "text"}},
    "hub": {"hf_hub_url": "someone/data"},
}


@pytest.fixture
def info(write):
    write("qa.json", [{"question": "Q", "context": "C", "answer": "A", "sys": "S"}])
    write("chat.jsonl", [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}])
    write("c4.jsonl", [{"text": "Some web text."}])
    return write("dataset_info.json", INFO)


def read_entry(info, name, **config):
    return read_samples(DataConfig(datasets=[DatasetConfig(path=f"{info}#{name}", **config)]))[0]


def test_alpaca_entry_with_columns(info):
    [s] = read_entry(info, "qa")
    assert s.messages == [Message("system", "S"), Message("user", "Q\nC"), Message("assistant", "A")]
    assert s.meta["source"] == str(info.parent / "qa.json")


def test_sharegpt_entry_with_openai_tags(info):
    [s] = read_entry(info, "chat")
    assert s.messages == [Message("user", "Hi"), Message("assistant", "Yo")]


def test_pretraining_entry_mapping_only_prompt_is_text(info):
    [s] = read_entry(info, "c4", task="pt")
    assert (s.kind, s.text, s.task) == ("text", "Some web text.", "pt")


def test_unknown_entry_lists_the_names(info):
    with pytest.raises(DataError, match=r"dataset_info.json: no dataset named 'nope' \(it has: c4, chat, hub, qa\)"):
        read_entry(info, "nope")


def test_hub_entry_says_it_is_not_fetched(info):
    with pytest.raises(DataError, match=r"#hub: the entry loads from hf_hub_url \(someone/data\), which tuneforge "
                                        r"does not fetch; download the data and set file_name"):
        read_entry(info, "hub")
