"""Forgetting check: the same general probe before and after fine-tuning, reported as a delta.

The probe is held-out general text (English and Chinese; perplexity) and a small set of everyday
instructions (share of answers containing the expected word). A fine-tune that taught the task but
raised general perplexity sharply or broke simple instructions has overwritten general ability:
lower the learning rate or epochs, use a smaller adapter, or mix general data back in (`data.replay`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tuneforge.config import GenerationConfig, TemplateConfig
from tuneforge.eval.generation import generate_answers
from tuneforge.eval.metrics import build_metrics
from tuneforge.eval.perplexity import reference_loss
from tuneforge.types import Sample

PROBES = Path(__file__).parent / "probes"


@dataclass
class ProbeScores:
    text_perplexity: float
    instructions_correct: float


@dataclass
class Forgetting:
    before: ProbeScores
    after: ProbeScores

    @property
    def perplexity_change(self) -> float:
        """Relative change of general-text perplexity (+0.10 = 10% worse)."""
        return self.after.text_perplexity / self.before.text_perplexity - 1

    @property
    def instructions_change(self) -> float:
        """Change of the share of everyday instructions answered right (-0.25 = a quarter fewer)."""
        return self.after.instructions_correct - self.before.instructions_correct

    def to_dict(self) -> dict:
        return {"before": vars(self.before), "after": vars(self.after),
                "perplexity_change": self.perplexity_change, "instructions_change": self.instructions_change}


def probe_samples() -> tuple[list[Sample], list[Sample]]:
    from tuneforge.io import read_samples

    text, _ = read_samples(str(PROBES / "general_text.jsonl"))
    instructions, _ = read_samples(str(PROBES / "general_instructions.jsonl"))
    return text, instructions


def probe(model, tokenizer, template: TemplateConfig, *, virtual_tokens: bool = False) -> ProbeScores:
    from tuneforge.serve.engine import Engine
    from tuneforge.serve.generate import prompt_of

    text, instructions = probe_samples()
    loss = reference_loss(model, tokenizer, text, template.model_copy(update={"cutoff_len": 1024}),
                          virtual_tokens=virtual_tokens)
    with Engine(model, tokenizer, template=template) as engine:
        answers = generate_answers(engine, [prompt_of(s) for s in instructions], GenerationConfig(max_new_tokens=24))
    contains = build_metrics(["contains"])[0]
    scores = [contains.score(a, s.messages[-1].content) for a, s in zip(answers.texts, instructions)]
    return ProbeScores(loss.perplexity, sum(scores) / len(scores))


def forgetting_check(base, tokenizer, artefact: Path, template: TemplateConfig):
    """(the probe before and after, the adapted model); `base` is adapted in place for PEFT methods,
    so the probe runs on it first."""
    from tuneforge.methods.artefact import method_of

    before = probe(base, tokenizer, template)
    method = method_of(artefact)
    tuned = method.load(base, artefact)
    after = probe(tuned, tokenizer, template, virtual_tokens=method.uses_prompt_tokens)
    return Forgetting(before, after), tuned
