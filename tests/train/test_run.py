import json

import pytest

from tuneforge.config import build_config
from tuneforge.train.run import run_training

QUICKSTART = "src/tuneforge/quickstart/data/train.jsonl"


def _pairs(path, n=8):
    rows = [{"prompt": f"Say {w}.", "chosen": f"{w}!", "rejected": f"No, I won't say {w}."}
            for w in ["yes", "hi", "ok", "go", "up", "on", "in", "at"][:n]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_multi_task_reports_eval_loss_per_task(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parents[2])
    other = tmp_path / "echo.jsonl"
    other.write_text("".join(json.dumps({"instruction": f"Echo {i}", "output": f"{i}"}) + "\n" for i in range(40)))
    cfg = build_config({
        "model": {"name_or_path": str(tiny_model_dir)},
        "data": {"datasets": [{"path": QUICKSTART, "task": "weather"}, {"path": str(other), "task": "echo"}]},
        "train": {"output_dir": str(tmp_path / "run"), "max_steps": 2, "batch_size": 4, "val_size": 0.2,
                  "eval_every": 1},
    })
    history = run_training(cfg).result.history
    assert {"eval_val_loss", "eval_task_weather_loss", "eval_task_echo_loss"} <= set(history[-1])
    assert (tmp_path / "run" / "best" / "adapter_config.json").exists()  # keep-best


@pytest.mark.parametrize("precompute", [False, True])
def test_dpo_logs_rewards_and_first_step_matches_reference_mode(tiny_model_dir, tmp_path, precompute):
    cfg = build_config({
        "model": {"name_or_path": str(tiny_model_dir)},
        "data": _pairs(tmp_path / "pairs.jsonl"),
        "method": {"name": "lora", "r": 4},
        "train": {"stage": "dpo", "output_dir": str(tmp_path / "run"), "max_steps": 2, "batch_size": 4,
                  "learning_rate": 1e-3, "dpo_precompute_ref": precompute},
    })
    history = run_training(cfg).result.history
    # LoRA starts at the base, so policy == reference at step 1: loss = -log(sigmoid(0)) = log 2
    assert history[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
    assert history[0]["reward_margin"] == pytest.approx(0.0, abs=1e-5)
    assert "reward_accuracy" in history[-1]


def test_dpo_records_pairs_and_their_trained_tokens(tiny_model_dir, tmp_path):
    from tuneforge.formatting import tokenize_samples
    from tuneforge.io import read_samples
    from tuneforge.models import load_tokenizer

    cfg = build_config({
        "model": {"name_or_path": str(tiny_model_dir)}, "data": _pairs(tmp_path / "pairs.jsonl"),
        "method": {"name": "lora", "r": 4},
        "train": {"stage": "dpo", "output_dir": str(tmp_path / "run"), "max_steps": 2, "batch_size": 4},
    })
    history = run_training(cfg).result.history
    # 8 pairs, 4 a step: two steps are one epoch, so every reply's trained token is counted once
    samples, _ = read_samples(cfg.data)
    _, stats = tokenize_samples(samples, load_tokenizer(str(tiny_model_dir)), cfg.template, use_cache=False)
    assert [r["pairs"] for r in history] == [4, 4]
    assert sum(r["trained_tokens"] for r in history) == stats.trained_tokens > 16
    assert all(r["tokens_per_s"] > 0 for r in history)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["cost"]["trained_tokens"] == stats.trained_tokens


def test_dpo_full_fine_tuning_uses_a_frozen_copy(tiny_model_dir, tmp_path):
    cfg = build_config({
        "model": {"name_or_path": str(tiny_model_dir)}, "data": _pairs(tmp_path / "pairs.jsonl", 4),
        "method": {"name": "full"},
        "train": {"stage": "dpo", "output_dir": str(tmp_path / "run"), "max_steps": 2, "batch_size": 4,
                  "learning_rate": 1e-3},
    })
    history = run_training(cfg).result.history
    assert history[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
    assert history[1]["loss"] < history[0]["loss"]


def test_wrong_stage_for_the_data_is_a_clear_error(tiny_model_dir, tmp_path):
    from tuneforge.errors import TuneforgeError

    cfg = build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": _pairs(tmp_path / "p.jsonl"),
                        "train": {"output_dir": str(tmp_path / "run")}})
    with pytest.raises(TuneforgeError, match="train.stage=sft needs chat samples"):
        run_training(cfg)


def test_validation_from_a_file(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parents[2])
    cfg = build_config({
        "model": {"name_or_path": str(tiny_model_dir)}, "data": QUICKSTART,
        "eval": {"datasets": [{"path": "src/tuneforge/quickstart/data/test.jsonl"}]},
        "train": {"output_dir": str(tmp_path / "run"), "max_steps": 1, "batch_size": 8, "eval_every": 1},
    })
    summary = run_training(cfg)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["samples"]["val"] == 24 and manifest["samples"]["train"] == 240
    assert manifest["template"] == "auto" and manifest["template_note"] is None  # auto kept the tokenizer's own
    assert "eval_val_loss" in summary.result.history[-1]


def test_packing_block_size_is_its_own_setting(tiny_model_dir, tmp_path):
    import json

    import pytest

    from tuneforge.errors import ConfigError

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Question number {i}?", "output": "An answer."}) + "\n"
                            for i in range(24)))

    def steps(**train):
        cfg = build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": str(data),
                            "template": {"cutoff_len": 64},
                            "train": {"output_dir": str(tmp_path / f"run{len(train)}{train}"), "batch_size": 1,
                                      **train}})
        return run_training(cfg).result.state.step

    default, wide = steps(), steps(block_size=256)
    assert wide < default  # four times the room per row: fewer rows, fewer steps for the same epoch
    with pytest.raises(ConfigError, match="train.block_size=32 is below template.cutoff_len=64"):
        steps(block_size=32)


def _chats(path, n_short, n_long):
    rows = ([{"instruction": f"Say {i}.", "output": f"{i}."} for i in range(n_short)]
            + [{"instruction": "Tell a long story. " * 40, "output": "Once upon a time " * 40} for _ in range(n_long)])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_more_than_half_dropped_stops_before_training_unless_allowed(tiny_model_dir, tmp_path, capsys):
    from tuneforge.errors import TuneforgeError

    raw = {"model": {"name_or_path": str(tiny_model_dir)}, "data": _chats(tmp_path / "d.jsonl", 2, 3),
           "template": {"cutoff_len": 64}, "train": {"output_dir": str(tmp_path / "run"), "max_steps": 1}}
    with pytest.raises(TuneforgeError, match=r"3 of 5 samples \(60%\) would be dropped.*too_long 3.*"
                                             r"data.allow_dropping: true"):
        run_training(build_config(raw))
    assert "5 samples with template auto: 2 kept (0 truncated), 3 dropped (too_long 3)" in capsys.readouterr().out
    assert not (tmp_path / "run" / "final").exists()
    summary = run_training(build_config(raw, ["data.allow_dropping=true"]))
    assert summary.result.state.step == 1


def test_a_template_that_drops_tool_calls_stops_the_run(tiny_model_dir, tmp_path):
    from tuneforge.errors import TuneforgeError

    record = {"messages": [{"role": "user", "content": "Weather in Paris?"},
                           {"role": "assistant", "content": "",
                            "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
                           {"role": "tool", "content": "21"}, {"role": "assistant", "content": "21 degrees."}]}
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for _ in range(3)))
    ignores_calls = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                     "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    raw = {"model": {"name_or_path": str(tiny_model_dir)}, "data": str(path),
           "template": {"jinja": ignores_calls}, "train": {"output_dir": str(tmp_path / "run"), "max_steps": 1}}
    with pytest.raises(TuneforgeError, match=r"template 'jinja' cannot render.*3 samples by "
                                             r"template_drops_tool_calls.*chatml, qwen, llama3"):
        run_training(build_config(raw))
    # template auto picks the tool-capable built-in, trains, and records it where serving looks
    raw["template"] = {"name": "auto"}
    run_training(build_config(raw))
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["template"] == "chatml"
    assert "'chatml'" in manifest["template_note"] and "tool calls (3 samples)" in manifest["template_note"]
    assert "name: chatml" in (run / "config.yaml").read_text()


def test_the_manifest_hashes_the_data_a_dataset_info_entry_names(tmp_path):
    import hashlib

    from tuneforge.config import DatasetConfig
    from tuneforge.train.manifest import data_hashes

    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "identity.json"
    data.write_text(json.dumps([{"instruction": "Who are you?", "output": "tuneforge."}]))
    info = tmp_path / "data" / "dataset_info.json"
    info.write_text(json.dumps({"identity": {"file_name": "identity.json"}, "other": {"file_name": "x.json"}}))
    sha = {str(data): hashlib.sha256(data.read_bytes()).hexdigest()}
    assert data_hashes([DatasetConfig(path=f"{info}#identity")]) == sha
    # a LLaMA-Factory v1 dataset YAML, one entry or all of them: the data too, not the descriptor
    descriptor = tmp_path / "v1.yaml"
    descriptor.write_text("identity:\n  path: data/identity.json\n  source: local\n  converter: alpaca\n")
    assert data_hashes([DatasetConfig(path=f"{descriptor}#identity")]) == sha
    assert data_hashes([DatasetConfig(path=str(descriptor))]) == sha
