"""Stages kto, orpo and simpo end to end on a tiny random model: LoRA and full fine-tuning, the
rewards they log, KTO on LLaMA-Factory's kto format, and the data they refuse."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from tuneforge.config import build_config
from tuneforge.errors import TuneforgeError
from tuneforge.train.run import run_training

# A tiny model's steps run faster on one thread than on two busy cores, and do not vary between runs.
pytestmark = pytest.mark.usefixtures("one_thread")

KTO_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train" / "kto" / "dataset_info.json"
WORDS = ["yes", "hi", "ok", "go", "up", "on", "in", "at"]


def _pairs(path: Path, n: int = 4) -> str:
    path.write_text("".join(json.dumps({"prompt": f"Say {w}.", "chosen": f"{w}!",
                                        "rejected": f"No, I won't say {w}."}) + "\n" for w in WORDS[:n]))
    return str(path)


def _labelled(path: Path, n: int = 4, labels: list[bool] | None = None) -> str:
    labels = labels if labels is not None else [i % 2 == 0 for i in range(n)]
    rows = [{"messages": [{"role": "user", "content": f"Say {w}."},
                          {"role": "assistant", "content": f"{w}!" if good else f"No, I won't say {w}."}],
             "label": good} for w, good in zip(WORDS, labels)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _config(tiny_model_dir, tmp_path, stage: str, data, method: str = "lora", eval_data=None, **train):
    return build_config({
        "model": {"name_or_path": str(tiny_model_dir)}, "data": data,
        **({"eval": {"datasets": [{"path": eval_data}]}} if eval_data else {}),
        "method": {"name": method, **({"r": 4} if method == "lora" else {})},
        "train": {"stage": stage, "output_dir": str(tmp_path / "run"), "batch_size": 4, "learning_rate": 2e-3,
                  **train},
    })


def _check_rewards(history: list[dict], stage: str) -> None:
    sides = ("desirable", "undesirable") if stage == "kto" else ("chosen", "rejected")
    for record in history:
        assert {f"reward_{sides[0]}", f"reward_{sides[1]}", "reward_margin", "reward_accuracy"} <= set(record)
        assert record["reward_margin"] == pytest.approx(record[f"reward_{sides[0]}"] - record[f"reward_{sides[1]}"],
                                                        rel=1e-4, abs=1e-6)


# LoRA with kto runs in the LLaMA-Factory format test below.
@pytest.mark.parametrize("stage, method", [("kto", "full"), ("orpo", "lora"), ("orpo", "full"), ("simpo", "lora"),
                                           ("simpo", "full")])
def test_stage_learns_its_preference_and_logs_rewards(stage, method, tiny_model_dir, tmp_path, caplog):
    """Three steps on one batch of four: the loss falls and the reward margin rises, for an adapter
    and for full fine-tuning (KTO's reference then is a frozen copy of the base)."""
    if stage == "kto":  # three desirable examples to one: unbalanced at equal weights
        data = _labelled(tmp_path / "data.jsonl", labels=[True, True, True, False])
    else:
        data = _pairs(tmp_path / "data.jsonl")
    with caplog.at_level(logging.WARNING, logger="tuneforge.train"):
        # Evaluated on the same data at the end: the loss of every stage runs in evaluation too.
        history = run_training(_config(tiny_model_dir, tmp_path, stage, data, method, eval_data=data, max_steps=3,
                                       eval_every=3)).result.history
    _check_rewards(history, stage)
    assert history[-1]["eval_val_loss"] == history[-1]["eval_val_loss"]  # finite
    if stage == "kto":
        assert "λ_D·n_D / (λ_U·n_U) = 3.00" in caplog.text and "between 0.33 and 0.44" in caplog.text
        # The policy starts as its reference: every log-ratio and the reference point are 0, so each
        # example's loss is 1 - σ(0) = 0.5 and the margin is 0.
        assert history[0]["loss"] == pytest.approx(0.5, abs=1e-5)
        assert history[0]["reward_margin"] == pytest.approx(0.0, abs=1e-5)
        assert "kl" in history[0]
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["reward_margin"] > history[0]["reward_margin"]
    assert history[-1]["reward_accuracy"] >= history[0]["reward_accuracy"]
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["reward_margin"] for m in metrics] == [r["reward_margin"] for r in history]


def test_kto_on_llama_factory_kto_format_raises_the_reward_margin(tiny_model_dir, tmp_path):
    """LLaMA-Factory's kto_en_demo layout (sharegpt messages, kto_tag: label, via its dataset_info.json
    entry as it is), eight examples of both classes in one batch: the policy starts as its reference
    (adapters off), then each step widens the margin between the classes' rewards."""
    records = json.loads((KTO_EXAMPLE.parent / "kto_demo.json").read_text())[:8]
    (tmp_path / "kto_demo.json").write_text(json.dumps(records))
    shutil.copy(KTO_EXAMPLE, tmp_path / "dataset_info.json")
    cfg = _config(tiny_model_dir, tmp_path, "kto", f"{tmp_path / 'dataset_info.json'}#kto_demo", max_steps=4,
                  batch_size=8, learning_rate=3e-3, kto_beta=0.5)
    history = run_training(cfg).result.history
    _check_rewards(history, "kto")
    margins = [r["reward_margin"] for r in history]
    assert margins[0] == pytest.approx(0.0, abs=1e-5) and history[0]["loss"] == pytest.approx(0.5, abs=1e-5)
    assert all(b > a for a, b in zip(margins, margins[1:])) and margins[-1] > 0.3
    assert all(b["loss"] < a["loss"] for a, b in zip(history, history[1:]))
    # Units are examples; trained tokens are their replies' tokens (each reply here is over 8 tokens).
    assert all(r["examples"] == 8 and r["trained_tokens"] > 8 * 8 for r in history)


def test_kto_refuses_a_set_of_one_class(tiny_model_dir, tmp_path):
    data = _labelled(tmp_path / "good.jsonl", labels=[True] * 4)
    with pytest.raises(TuneforgeError, match="both desirable and undesirable.*all 4 training examples are desirable"):
        run_training(_config(tiny_model_dir, tmp_path, "kto", data, max_steps=1))


def test_kto_names_the_first_unlabelled_sample(tiny_model_dir, tmp_path):
    path = tmp_path / "chat.jsonl"
    _labelled(path)
    lines = path.read_text().splitlines()
    lines[2] = json.dumps({**json.loads(lines[2]), "label": None})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TuneforgeError, match=r"chat.jsonl:3: stage kto needs every sample labelled.*no label"):
        run_training(_config(tiny_model_dir, tmp_path, "kto", str(path), max_steps=1))


def test_kto_needs_two_examples_per_micro_batch(tiny_model_dir, tmp_path):
    data = _labelled(tmp_path / "data.jsonl")
    with pytest.raises(TuneforgeError, match="batch_size must be at least 2"):
        run_training(_config(tiny_model_dir, tmp_path, "kto", data, max_steps=1, batch_size=1))


def test_a_resumed_kto_run_ends_with_the_weights_of_an_uninterrupted_one(tiny_model_dir, tmp_path):
    """Two epochs of two steps, resumed after the second step: the batches (and their mismatched
    pairs) are a function of the epoch, so the resumed run trains on exactly the same ones."""
    from safetensors.torch import load_file

    data = _labelled(tmp_path / "data.jsonl")
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    settings = {"max_steps": 4, "batch_size": 2, "save_every": 2}
    run_training(_config(tiny_model_dir, tmp_path, "kto", data, output_dir=str(whole), **settings))
    shutil.copytree(whole, resumed)
    shutil.rmtree(resumed / "final")
    shutil.rmtree(max((resumed / "checkpoints").glob("step-*")))
    run_training(_config(tiny_model_dir, tmp_path, "kto", data, output_dir=str(resumed), resume="auto", **settings))
    assert json.loads((resumed / "resumes.jsonl").read_text())["at_step"] == 2  # it did resume
    weights = [load_file(str(d / "final" / "adapter_model.safetensors")) for d in (whole, resumed)]
    assert weights[0].keys() == weights[1].keys()
    assert all((weights[0][k] == weights[1][k]).all() for k in weights[0])


def test_doctor_knows_the_new_stages(tiny_model_dir, tmp_path):
    from tuneforge.doctor import run_doctor

    def codes(stage, data, **train):
        return {f.code: f for f in run_doctor(_config(tiny_model_dir, tmp_path, stage, data, **train)).findings}

    pairs, chat = _pairs(tmp_path / "pairs.jsonl"), _labelled(tmp_path / "chat.jsonl", 8, [True] * 6 + [False] * 2)
    assert codes("orpo", chat)["stage_data_kind"].level == "error"
    assert "stage_data_kind" not in codes("simpo", pairs)
    assert "kto_unbalanced" in codes("kto", chat)
    assert codes("kto", _labelled(tmp_path / "bad.jsonl", labels=[False] * 4))["kto_one_class"].level == "error"


def test_the_progress_line_takes_a_kto_step_of_one_class():
    """A KTO step whose examples are all of one class has accuracy but no margin."""
    import io

    from rich.console import Console

    from tuneforge.cli.progress import TrainingProgress

    out = io.StringIO()
    progress = TrainingProgress(Console(file=out, width=120, force_terminal=False), line_fraction=0.001)
    progress.update({"step": 1, "total_steps": 2, "loss": 0.5, "lr": 1e-4, "trained_tokens": 40, "tokens_per_s": 80.0,
                     "examples": 4, "reward_desirable": 0.01, "reward_accuracy": 1.0, "kl": 0.0})
    assert "acc 1.00" in out.getvalue() and "margin" not in out.getvalue()


@pytest.mark.parametrize("method", ["prompt", "lora"])
def test_reply_logprobs_skip_the_virtual_tokens_of_prompt_methods(method):
    """Prompt tuning puts virtual tokens in front of the inputs: the replies' log-probs come from the
    positions after them, as the SFT loss reads them (its summed cross-entropy is their negative)."""
    import torch

    from tuneforge.lm_loss import CausalLMLoss
    from tuneforge.methods import get_method
    from tuneforge.models import tiny_llama
    from tuneforge.train.step import stacked_logprobs

    torch.manual_seed(0)
    model = get_method(method).apply(tiny_llama(vocab_size=64, hidden_size=32, layers=2),
                                     build_config({"method": {"name": method}}).method)
    ids = torch.randint(0, 64, (2, 9))
    labels = ids.clone()
    labels[:, :4] = -100
    mask = torch.ones_like(ids)
    chosen, _ = stacked_logprobs(model, (ids, labels, mask), (ids, labels, mask))
    ce, n = CausalLMLoss(model, whole_forward=True)(labels=labels, input_ids=ids, attention_mask=mask)
    assert n == 10 and chosen.sum().item() == pytest.approx(-ce.item(), rel=1e-5)


def test_a_checkpoint_from_before_the_new_keys_resumes_while_they_hold_their_defaults(tmp_path):
    from tuneforge.train.fingerprint import config_changes, fingerprint

    new_keys = ["train.kto_beta", "train.kto_desirable_weight", "train.kto_undesirable_weight", "train.orpo_beta",
                "train.simpo_beta", "train.simpo_gamma"]
    cfg = build_config({"data": _pairs(tmp_path / "pairs.jsonl"), "train": {"stage": "dpo"}})
    old = {k: v for k, v in fingerprint(cfg).items() if k not in new_keys}
    assert set(new_keys) <= set(fingerprint(cfg)) and config_changes(old, fingerprint(cfg)) == {}
    changed = cfg.model_copy(update={"train": cfg.train.model_copy(update={"simpo_gamma": 0.5})})
    assert config_changes(old, fingerprint(changed)) == {"train.simpo_gamma": (None, 0.5)}
