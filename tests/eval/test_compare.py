"""compare's plan (which strategies can run), its config key (and that key's old name), its errors,
and training cost from run manifests."""

import json

import pytest

from tuneforge.config import CompareConfig, build_config, load_config
from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.eval.compare import planned_strategies, run_compare, training_cost


def test_strategies_without_their_inputs_are_skipped_with_a_note():
    cfg = build_config({"eval": {"compare": {"strategies": ["zero_shot", "few_shot", "rag"]}}})
    strategies, notes = planned_strategies(cfg)
    assert strategies == ["zero_shot"]
    assert notes == ["few_shot skipped: no example pool (eval.icl.pool or data.datasets)",
                     "rag skipped: no knowledge source (eval.rag.index or eval.rag.documents)"]
    cfg = build_config({"data": "train.jsonl", "eval": {"rag": {"documents": ["kb/"]}}})
    assert planned_strategies(cfg) == (["zero_shot", "few_shot", "rag"], [])


def test_strategies_key_and_its_deprecated_name_methods_both_load(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(CompareConfig, "_warned_methods", False, raising=False)
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("eval:\n  compare:\n    methods: [zero_shot, rag]\n")
    new.write_text("eval:\n  compare:\n    strategies: [zero_shot, rag]\n")
    with caplog.at_level("WARNING", logger="tuneforge.config"):
        assert load_config(new).eval.compare.strategies == ["zero_shot", "rag"]
        assert not caplog.records
        cfg = load_config(old)
        assert cfg.eval.compare.strategies == ["zero_shot", "rag"]
        assert [r.getMessage() for r in caplog.records] == [
            "eval.compare.methods is deprecated: call it eval.compare.strategies"]
        assert load_config(old).eval.compare.strategies == ["zero_shot", "rag"]
        assert len(caplog.records) == 1  # warned once per process
    assert "methods" not in cfg.model_dump()["eval"]["compare"]  # a resolved config is written with the new name
    with pytest.raises(ConfigError, match="give only 'strategies'"):
        build_config({"eval": {"compare": {"methods": ["rag"], "strategies": ["rag"]}}})
    with pytest.raises(ConfigError, match="unknown key 'eval.compare.strategy'; did you mean 'strategies'"):
        build_config({"eval": {"compare": {"strategy": ["rag"]}}})
    with pytest.raises(ConfigError, match="'eval.compare.strategies.0'"):
        build_config({"eval": {"compare": {"methods": ["lora"]}}})


def test_training_cost_comes_from_the_run_manifest(tmp_path):
    (tmp_path / "final").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"cost": {"seconds": 81.5, "trained_tokens": 12000}}))
    expected = {"training_seconds": 81.5, "trained_tokens": 12000}
    assert training_cost(str(tmp_path)) == expected and training_cost(str(tmp_path / "final")) == expected
    (tmp_path / "other" / "adapter").mkdir(parents=True)
    assert training_cost(str(tmp_path / "other" / "adapter")) == {}


@pytest.mark.parametrize("compare, message", [
    ({"adapters": {"base": "x"}}, "names must differ"),
    ({"adapters": {"zero_shot": "x"}}, "names must differ"),
    ({"strategies": [], "adapters": {}}, "nothing to compare"),
    ({"primary_metric": "bleu"}, "not one of eval.metrics"),
])
def test_compare_config_errors(compare, message, tmp_path):
    data = tmp_path / "e.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "a"}]}) + "\n")
    cfg = build_config({"eval": {"datasets": [{"path": str(data)}], "metrics": ["exact_match"], "compare": compare}})
    with pytest.raises(TuneforgeError, match=message):
        run_compare(cfg)
