"""report.html shows what each stage logs: the loss curves of every stage, an alignment stage's
rewards, margin, accuracy and KL, and GRPO's sample completions."""

from __future__ import annotations

import json

from tuneforge.train.report import write_report


def write_metrics(run_dir, records):
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_an_sft_run_gets_its_loss_curves_and_no_alignment_charts(tmp_path):
    write_metrics(tmp_path, [{"step": s, "loss": 2.0 / s, "lr": 1e-4, "grad_norm": 1.0, "tokens_per_s": 100.0}
                             for s in (1, 2, 3)])
    page = write_report(tmp_path).read_text()
    assert {p.name for p in tmp_path.glob("*.png")} == {"loss.png", "lr.png", "grad_norm.png", "tokens_per_s.png"}
    assert "Sample completions" not in page


def test_a_preference_run_charts_its_rewards_margin_and_accuracy(tmp_path):
    write_metrics(tmp_path, [{"step": s, "loss": 0.69 - 0.1 * s, "reward_chosen": 0.1 * s, "reward_rejected": -0.1 * s,
                              "reward_margin": 0.2 * s, "reward_accuracy": 0.5 + 0.1 * s} for s in (1, 2, 3)])
    page = write_report(tmp_path).read_text()
    assert {"rewards.png", "reward_accuracy.png"} <= {p.name for p in tmp_path.glob("*.png")}
    assert 'src="rewards.png"' in page and "kl.png" not in page


def test_a_grpo_run_shows_its_first_and_last_sample_completions(tmp_path):
    def sample(step):
        completion = f'{{"city": "Oslo", "step": {step}}}'
        return {"prompt": "Note: rain in <Oslo>", "completion": completion, "reward": step / 4}

    write_metrics(tmp_path, [{"step": s, "loss": 0.1, "reward": s / 4, "reward_json_schema": s / 4, "reward_std": 0.1,
                              "reward_failures": 0, "kl": 0.01 * s, "clip_fraction": 0.0, "completion_length": 20.0,
                              "samples": [sample(s)]} for s in (1, 2, 3, 4)])
    page = write_report(tmp_path).read_text()
    assert {"rewards.png", "kl.png", "completion_length.png"} <= {p.name for p in tmp_path.glob("*.png")}
    assert "Sample completions" in page and "rain in &lt;Oslo&gt;" in page  # escaped
    assert "&quot;step&quot;: 1}" in page and "&quot;step&quot;: 4}" in page  # the first and the last step
    assert "&quot;step&quot;: 2}" not in page
