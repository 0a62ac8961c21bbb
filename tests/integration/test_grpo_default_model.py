"""GRPO on the default model: the quickstart's JSON-format task, learnt from rewards alone.

`examples/train/grpo-json.yaml` (LoRA, G = 8; a json_schema reward with a format check, partial
credit for the keys, and rouge_l against the reference answer for the values) trains on the
quickstart's training prompts; the 24 held-out notes (cities and phrasings never seen in training)
are answered greedily, through the serving engine, by the base and by the trained adapter, with the
same system prompt. Format compliance is the quickstart's: a reply that is a JSON object with exactly
the keys city, temp_c and condition. It must rise from the base's zero-shot figure to at least 90%,
with the values read from each note (more replies entirely right than before), not one fixed reply
that satisfies the form.
"""

import time
from pathlib import Path

from tuneforge.config import load_config
from tuneforge.quickstart import held_out, score
from tuneforge.serve.engine import load_engine
from tuneforge.serve.sampling import SamplingParams
from tuneforge.train.rollout import chat_prompts
from tuneforge.train.run import run_training

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train" / "grpo-json.yaml"
STEPS = 10


def test_grpo_teaches_the_json_format_from_rewards(tmp_path, default_model):
    cfg = load_config(EXAMPLE, [f"train.output_dir={tmp_path}", f"train.max_steps={STEPS}"])
    started = time.time()
    history = run_training(cfg).result.history
    minutes = (time.time() - started) / 60

    samples = held_out()
    prompts, dropped = chat_prompts(samples, default_model[1], cfg)
    assert not dropped and len(prompts) == 24
    references = [p.reference for p in prompts]
    greedy = SamplingParams(max_tokens=48)
    with load_engine("smollm2-135m-instruct", {"grpo": str(tmp_path / "final")}, model_id="base") as engine:
        before = score([c.text for c in engine.complete_all([p.ids for p in prompts], greedy, model="base")],
                       references)
        replies = [c.text for c in engine.complete_all([p.ids for p in prompts], greedy, model="grpo")]
    after = score(replies, references)
    print(f"\nGRPO {STEPS} steps in {minutes:.1f} min: format compliance {before.compliant:.0%} -> "
          f"{after.compliant:.0%} (all values right: {before.correct:.0%} -> {after.correct:.0%}); "
          f"reward per step {[round(r['reward'], 2) for r in history]}")
    assert before.compliant < 0.5
    assert after.compliant >= 0.9, replies
    assert after.correct > before.correct, replies
