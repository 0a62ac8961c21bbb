"""Contamination check: does the eval set overlap the training data?

It runs curation's reference matching (word/character n-gram shingles, MinHash LSH and an exact
Jaccard check) with the training data as the reference, separately on eval prompts and on eval
answers. A matching prompt means the score measures memory, not generalisation. Matching answers
alone are weaker evidence: tasks with a fixed output shape (JSON records, labels) share most of their
answer n-grams by design.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tuneforge.types import Sample


@dataclass
class Contamination:
    checked: int
    prompts: list[dict] = field(default_factory=list)
    """`{"id", "match"}` for every eval prompt near-copying a training prompt (match: file:line, Jaccard)."""
    answers: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"checked": self.checked, "prompt_matches": len(self.prompts), "answer_matches": len(self.answers),
                "prompts": self.prompts, "answers": self.answers}


def contamination_check(eval_samples: list[Sample], training_paths: list[str], threshold: float = 0.5) -> Contamination:
    from tuneforge.curate.base import Drop
    from tuneforge.curate.reference import ReferenceDedup

    report = Contamination(len(eval_samples))
    for part, fields, out in (("prompt", ["system", "user"], report.prompts),
                              ("answer", ["assistant"], report.answers)):
        matcher = ReferenceDedup(op="reference_dedup", name=f"contamination_{part}", references=training_paths,
                                 fields=fields, reference_fields=fields, threshold=threshold).build()
        for i, sample in enumerate(eval_samples):
            verdict = matcher(sample)
            if isinstance(verdict, Drop):
                out.append({"id": sample.id or str(i), "match": verdict.detail})
    return report
