"""compare's plan (which methods can run), its errors, and training cost from run manifests."""

import json

import pytest

from tuneforge.config import build_config
from tuneforge.errors import TuneforgeError
from tuneforge.eval.compare import planned_methods, run_compare, training_cost


def test_methods_without_their_inputs_are_skipped_with_a_note():
    cfg = build_config({"eval": {"compare": {"methods": ["zero_shot", "few_shot", "rag"]}}})
    methods, notes = planned_methods(cfg)
    assert methods == ["zero_shot"]
    assert notes == ["few_shot skipped: no example pool (eval.icl.pool or data.datasets)",
                     "rag skipped: no knowledge source (eval.rag.index or eval.rag.documents)"]
    cfg = build_config({"data": "train.jsonl", "eval": {"rag": {"documents": ["kb/"]}}})
    assert planned_methods(cfg) == (["zero_shot", "few_shot", "rag"], [])


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
    ({"methods": [], "adapters": {}}, "nothing to compare"),
    ({"primary_metric": "bleu"}, "not one of eval.metrics"),
])
def test_compare_config_errors(compare, message, tmp_path):
    data = tmp_path / "e.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n")
    cfg = build_config({"eval": {"datasets": [{"path": str(data)}], "metrics": ["exact_match"], "compare": compare}})
    with pytest.raises(TuneforgeError, match=message):
        run_compare(cfg)
