"""Loss and perplexity of reference answers: how likely the model finds the answers it should give.

Only the reference (the last assistant turn) carries loss, with the same template and label mask as
training, so the figure is comparable with a run's validation loss. Samples are scored one at a time:
eval sets are small, and a per-sample loss in the results file shows which answers the model finds
surprising.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from tuneforge.config import TemplateConfig
from tuneforge.lm_loss import CausalLMLoss
from tuneforge.types import Sample


@dataclass
class ReferenceLoss:
    per_sample: list[float | None]
    """Mean token loss of each sample's reference; None for a sample that could not be scored."""
    loss: float
    """Mean over every reference token of the set."""
    tokens: int
    skipped: dict[str, int] = field(default_factory=dict)
    """Reason -> samples not scored (no reference, too long, ...)."""

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss) if self.tokens else float("nan")


@torch.no_grad()
def reference_loss(model, tokenizer, samples: list[Sample], template: TemplateConfig, *,
                   virtual_tokens: bool = False, on_progress: Callable[[int, int], None] | None = None
                   ) -> ReferenceLoss:
    """`virtual_tokens`: the model is a prefix / prompt / p-tuning artefact (its whole forward must run);
    `on_progress(scored, total)` after each sample that fits the template's cutoff."""
    from tuneforge.formatting import tokenize_samples

    ds, stats = tokenize_samples(samples, tokenizer, template.model_copy(update={"train_on": "last"}),
                                 use_cache=False)
    loss_fn = CausalLMLoss(model, whole_forward=virtual_tokens).eval()
    device = next(model.parameters()).device
    per_sample: list[float | None] = [None] * len(samples)
    total, count = 0.0, 0
    sources = ds.source_index.tolist()
    if on_progress:
        on_progress(0, len(sources))
    for row, source in enumerate(sources):
        ids = torch.as_tensor(ds["input_ids"][row], dtype=torch.long, device=device)[None]  # (1, T)
        labels = torch.as_tensor(ds["labels"][row], dtype=torch.long, device=device)[None]  # (1, T)
        summed, n = loss_fn(labels=labels, input_ids=ids, attention_mask=torch.ones_like(ids))
        if n:
            per_sample[source] = float(summed) / n
            total, count = total + float(summed), count + n
        if on_progress:
            on_progress(row + 1, len(sources))
    return ReferenceLoss(per_sample, total / count if count else float("nan"), count, dict(stats.dropped))
