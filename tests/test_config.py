import re
from pathlib import Path

import pytest

from tuneforge.config import build_config, load_config, read_yaml
from tuneforge.errors import ConfigError


def test_defaults_are_offline_and_safe():
    cfg = build_config({})
    assert cfg.model.name_or_path == "smollm2-135m-instruct"
    assert cfg.model.trust_remote_code is False and cfg.model.allow_download is False
    assert cfg.template.train_on == "assistant"


def test_unknown_top_level_key_names_closest():
    with pytest.raises(ConfigError, match=r"unknown key 'templat'; did you mean 'template'\?"):
        build_config({"templat": {}})


def test_unknown_nested_key_inside_list_names_closest():
    with pytest.raises(ConfigError, match=r"unknown key 'data.datasets.0.pth'; did you mean 'path'\?"):
        build_config({"data": {"datasets": [{"path": "a.json", "pth": "b"}]}})


def test_unknown_key_without_close_match_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'model.zzz'; valid keys: name_or_path, dtype"):
        build_config({"model": {"zzz": 1}})


def test_wrong_value_names_key():
    with pytest.raises(ConfigError, match=r"'template.cutoff_len'"):
        build_config({"template": {"cutoff_len": -3}})


def test_set_overrides_parse_yaml_values():
    cfg = build_config({"data": "a.json"}, ["template.cutoff_len=512", "model.trust_remote_code=true",
                                            "data.placeholders={name: Forge}"])
    assert cfg.template.cutoff_len == 512
    assert cfg.model.trust_remote_code is True
    assert cfg.data.placeholders == {"name": "Forge"}
    assert [d.path for d in cfg.data.datasets] == ["a.json"]


def test_set_indexes_lists_and_names_a_bad_index():
    cfg = build_config({"data": ["a.json", "b.json"]}, ["data.datasets.1.format=alpaca", "data.datasets.0.weight=2"])
    assert [(d.path, d.format, d.weight) for d in cfg.data.datasets] == [("a.json", "auto", 2),
                                                                         ("b.json", "alpaca", None)]
    with pytest.raises(ConfigError, match=r"--set data.datasets.2.format: '2' is not an index of that list of 2"):
        build_config({"data": ["a.json", "b.json"]}, ["data.datasets.2.format=alpaca"])
    with pytest.raises(ConfigError, match=r"'x' is not an index"):
        build_config({"data": "a.json"}, ["data.datasets.x=1"])


def test_mixed_precision_no_survives_yaml(tmp_path):
    """PyYAML (YAML 1.1) reads a bare `no` as false; tuneforge reads YAML 1.2 booleans, in files and --set."""
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  mixed_precision: no\n")
    assert load_config(config).train.mixed_precision == "no"
    assert build_config({}, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    with pytest.raises(ConfigError, match="mixed_precision"):
        build_config({}, ["train.mixed_precision=yes"])
    # Boolean fields still take YAML 1.1's words.
    config.write_text("train:\n  packing: no\n  gradient_checkpointing: on\n")
    assert load_config(config).train.packing is False and load_config(config).train.gradient_checkpointing is True
    assert build_config({}, ["train.packing=off"]).train.packing is False
    assert read_yaml("[no, on, true, False]") == ["no", "on", True, False]


def test_set_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="expected key=value"):
        build_config({}, ["train.seed"])


def test_load_config_reports_file_and_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"missing.yaml: no such config file"):
        load_config(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text("model:\n  name_or_path: some/dir\ntemplate:\n  cutof_len: 3\n")
    with pytest.raises(ConfigError, match=r"good.yaml: unknown key 'template.cutof_len'"):
        load_config(good)


def test_relative_paths_in_a_config_file_are_relative_to_its_folder(tmp_path, monkeypatch):
    (tmp_path / "proj" / "data").mkdir(parents=True)
    (tmp_path / "proj" / "data" / "train.jsonl").write_text("{}\n")
    (tmp_path / "proj" / "data" / "info.json").write_text("{}")
    (tmp_path / "proj" / "my-model").mkdir()
    config = tmp_path / "proj" / "run.yaml"
    config.write_text("model: {name_or_path: my-model}\n"
                      "data:\n  datasets:\n    - path: data/train.jsonl\n"
                      "    - path: [data/*.jsonl, data/info.json#identity]\n"
                      "train: {output_dir: runs/a}\neval: {adapter: runs/a, compare: {adapters: {lora: runs/a}}}\n")
    monkeypatch.chdir(tmp_path)  # elsewhere than the config file
    cfg = load_config("proj/run.yaml")
    proj = tmp_path / "proj"
    assert cfg.model.name_or_path == str(proj / "my-model")
    assert cfg.data.datasets[0].path == str(proj / "data" / "train.jsonl")
    assert cfg.data.datasets[1].path == [str(proj / "data" / "*.jsonl"), str(proj / "data" / "info.json") + "#identity"]
    assert cfg.train.output_dir == cfg.eval.adapter == cfg.eval.compare.adapters["lora"] == str(proj / "runs" / "a")
    # Defaults that the file did not set stay relative to the current directory.
    assert cfg.eval.output_dir == "evals/latest"


def test_model_names_absolute_paths_and_home_are_not_prefixed(tmp_path, monkeypatch):
    (tmp_path / "d.jsonl").write_text("{}\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"model: {{name_or_path: HuggingFaceTB/SmolLM2-135M-Instruct}}\ndata: {tmp_path / 'd.jsonl'}\n"
                      "train: {output_dir: ~/runs/x}\n")
    monkeypatch.chdir("/")
    cfg = load_config(config)
    assert cfg.model.name_or_path == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert cfg.data.datasets[0].path == str(tmp_path / "d.jsonl")
    assert cfg.train.output_dir == str(Path.home() / "runs" / "x")


def test_set_overrides_stay_relative_to_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "d.jsonl").write_text("{}\n")
    (tmp_path / "other.jsonl").write_text("{}\n")
    config = tmp_path / "conf" / "c.yaml"
    config.write_text("data: d.jsonl\ntrain: {output_dir: out}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(config, ["train.output_dir=mine", "eval.datasets=[{path: other.jsonl}]"])
    assert cfg.train.output_dir == "mine"
    assert cfg.eval.datasets[0].path == "other.jsonl"
    assert cfg.data.datasets[0].path == str(tmp_path / "conf" / "d.jsonl")


def test_a_missing_input_names_the_key_and_the_resolved_path(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "data.jsonl").write_text("{}\n")  # beside the current directory, not beside the file
    config = tmp_path / "conf" / "c.yaml"
    config.write_text("data: data.jsonl\n")
    monkeypatch.chdir(tmp_path)
    missing = re.escape(str(tmp_path / "conf" / "data.jsonl"))
    with pytest.raises(ConfigError, match=rf"c.yaml: 'data.datasets.0.path': {missing}: no such file .*own folder"):
        load_config(config)
    config.write_text("data: ../data.jsonl\neval:\n  rag: {documents: [docs/]}\n")
    with pytest.raises(ConfigError, match=rf"'eval.rag.documents.0': {re.escape(str(tmp_path / 'conf' / 'docs'))}"):
        load_config(config)
    config.write_text("data: ../data.jsonl\n")
    with pytest.raises(ConfigError, match=r"'eval.datasets.0.path': nope/\*.jsonl: .*current directory"):
        load_config(config, ["eval.datasets=[{path: nope/*.jsonl}]"])
