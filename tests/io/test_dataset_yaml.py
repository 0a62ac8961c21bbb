"""LLaMA-Factory v1 dataset YAML descriptors (`data/v1_sft_demo.yaml` style) read as dataset paths."""

from __future__ import annotations

import pytest

from tuneforge.config import DataConfig, DatasetConfig, load_config
from tuneforge.errors import ConfigError, DataError
from tuneforge.io import read_samples
from tuneforge.types import Message

# LLaMA-Factory's v1_sft_demo.yaml shapes: path + source: local, and the older file_name + dataset_dir.
DESCRIPTOR = """\
identity:
  path: data/identity.json
  source: local
  converter: alpaca
chat:
  file_name: chat.jsonl
  dataset_dir: data
v1:
  path: data/v1.jsonl
  source: local
pairs:
  path: data/pairs.jsonl
  source: local
  converter: pair
"""


@pytest.fixture
def descriptor(write):
    write("data/identity.json", [{"instruction": "Who are you?", "output": "tuneforge's model."}])
    write("data/chat.jsonl", [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}])
    write("data/v1.jsonl", [{"messages": [
        {"role": "user", "content": [{"type": "text", "value": "Q"}], "loss_weight": 1.0},
        {"role": "assistant", "content": [{"type": "text", "value": "A"}], "loss_weight": 0.5}]}])
    q = {"role": "user", "content": "Q"}
    write("data/pairs.jsonl", [{"chosen": [q, {"role": "assistant", "content": "good"}],
                                "rejected": [q, {"role": "assistant", "content": "bad"}]}])
    return write("v1_sft_demo.yaml", DESCRIPTOR)


def read(path, **config):
    return read_samples(DataConfig(datasets=[DatasetConfig(path=str(path), **config)]))[0]


def test_one_entry_by_name(descriptor):
    [s] = read(f"{descriptor}#identity")
    assert s.messages == [Message("user", "Who are you?"), Message("assistant", "tuneforge's model.")]
    assert s.meta["source"] == str(descriptor.parent / "data" / "identity.json")
    [s] = read(f"{descriptor}#chat")
    assert [m.content for m in s.messages] == ["Hi", "Yo"]
    [s] = read(f"{descriptor}#v1")
    assert [m.loss_weight for m in s.messages] == [1.0, 0.5]
    [p] = read(f"{descriptor}#pairs")
    assert p.kind == "preference" and p.chosen[0].content == "good" and p.rejected[0].content == "bad"


def test_the_whole_descriptor_reads_every_entry_in_order(descriptor, write):
    write("v1_chat.yaml", DESCRIPTOR.split("pairs:")[0])  # identity, chat, v1: all SFT
    samples = read(descriptor.parent / "v1_chat.yaml")
    assert [s.messages[0].content for s in samples] == ["Who are you?", "Hi", "Q"]


def test_paths_resolve_from_the_current_directory_as_llamafactory_does(write, tmp_path, monkeypatch):
    write("repo/data/identity.json", [{"instruction": "I", "output": "O"}])
    yaml_path = write("repo/data/v1_sft_demo.yaml", "identity:\n  path: data/identity.json\n  source: local\n"
                                                     "  converter: alpaca\n")
    monkeypatch.chdir(tmp_path / "repo")
    [s] = read(f"{yaml_path}#identity")
    assert s.messages[-1].content == "O"


def test_a_training_config_names_a_descriptor_entry_relative_to_itself(descriptor, write):
    cfg_path = write("train.yaml", "data:\n  datasets:\n    - path: v1_sft_demo.yaml#identity\n")
    cfg = load_config(cfg_path)
    assert cfg.data.datasets[0].path == f"{descriptor}#identity"
    missing = write("bad.yaml", "data:\n  datasets:\n    - path: nowhere.yaml#identity\n")
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_config(missing)


@pytest.mark.parametrize("entry,message", [
    ("  path: someone/data\n", "Hugging Face Hub id"),
    ("  path: someone/data\n  source: hf_hub\n", "local files only"),
    ("  path: data/identity.json\n  source: local\n  size: 500\n", "'size'"),
    ("  path: data/identity.json\n  source: local\n  weight: 2\n", "'weight'"),
    ("  path: data/identity.json\n  source: local\n  streaming: true\n", "'streaming'"),
    ("  path: data/identity.json\n  source: local\n  converter: openai\n", "unknown converter 'openai'"),
    ("  path: data/identity.json\n  source: local\n  colums: {}\n", "unknown key 'colums'"),
    ("  source: local\n", "no path"),
])
def test_what_is_not_supported_is_a_clear_error(descriptor, write, entry, message):
    path = write("odd.yaml", "odd:\n" + entry)
    with pytest.raises(DataError, match=message):
        read(f"{path}#odd")


def test_unknown_entry_and_malformed_descriptor(descriptor, write):
    with pytest.raises(DataError, match="no dataset named 'nope'.*identity"):
        read(f"{descriptor}#nope")
    with pytest.raises(DataError, match="mapping of dataset names"):
        read(write("list.yaml", "- path: a.json\n"))
