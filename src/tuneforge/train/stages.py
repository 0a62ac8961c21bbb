"""Training stages, one entry each: which samples a stage takes, how its tokenised data becomes
training items and batches, and which loss trains on them. `run_training` does the rest (model, method,
run directory, loop) the same way for every stage, so a new stage is one more entry in `STAGES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import nn

from tuneforge.config import Config
from tuneforge.train import data as stage_data
from tuneforge.train.batching import epoch_batches
from tuneforge.train.step import CausalLMLoss, DPOLoss

UNLIMITED = 1 << 30


@dataclass
class StageInputs:
    """What every stage is built from, once the model is adapted and the data tokenised."""

    cfg: Config
    model: nn.Module
    """The model with the method applied."""
    method: Any
    """The registered method object (`tuneforge.methods.get_method`)."""
    train_set: Any
    """Tokenised training data, and `samples` it came from (their `task` names)."""
    samples: Sequence[Any]
    val_set: Any | None
    """A tokenised held-out file (`eval.datasets`), or None for a share of the training data."""
    val_samples: Sequence[Any] | None
    block_size: int
    pad_id: int
    ref_model: nn.Module | None = None
    """A frozen copy of the base, for stages that compare against it when the method writes whole models."""


@dataclass
class StageSetup:
    train_items: list
    val_items: list
    loss_fn: nn.Module
    batches_of: Callable[[int], Sequence[Any]]
    """The micro-batches of an epoch: a pure function of the epoch, so that resumption replays them."""
    evals: Mapping[str, Sequence[Any]] = field(default_factory=dict)


class Stage(Protocol):
    sample_kind: str
    """The kind of `Sample` the stage trains on (`chat`, `text`, `preference`)."""
    needs_reference_copy: bool
    """Whether the stage compares against the base (a frozen copy when the method writes whole models)."""

    def template_cutoff(self, cfg: Config) -> int: ...

    def build(self, x: StageInputs) -> StageSetup: ...


def _split(items: list, x: StageInputs, val_items_of: Callable[[Any, Any], list]) -> tuple[list, list]:
    train_items, val_items = stage_data.split_holdout(items, x.cfg.train.val_size, x.cfg.train.seed)
    if x.val_set is not None:
        val_items = val_items_of(x.val_set, x.val_samples)
    return train_items, val_items


class LanguageModelling:
    """`sft` (chat, loss on assistant turns) and `pt` (raw text concatenated and cut into blocks)."""

    needs_reference_copy = False

    def __init__(self, sample_kind: str, blocks: bool):
        self.sample_kind, self.blocks = sample_kind, blocks

    def template_cutoff(self, cfg: Config) -> int:
        # Pre-training documents are never cut: they are concatenated and split into blocks instead.
        return UNLIMITED if self.blocks else cfg.template.cutoff_len

    def rows(self, tokenised, source, block_size: int) -> list:
        if self.blocks:
            return stage_data.pretraining_blocks(tokenised, block_size)
        return stage_data.lm_rows(tokenised, [s.task for s in source])

    def build(self, x: StageInputs) -> StageSetup:
        tc = x.cfg.train
        train_items, val_items = _split(self.rows(x.train_set, x.samples, x.block_size), x,
                                        lambda ds, samples: self.rows(ds, samples, x.block_size))
        prompt_tokens = x.method.uses_prompt_tokens
        loss_fn = CausalLMLoss(x.model, whole_forward=prompt_tokens, chunk_size=tc.loss_chunk_size)
        packing = tc.packing and not prompt_tokens  # virtual tokens cannot be packed

        def batches_of(epoch: int):
            return epoch_batches(train_items, batch_size=tc.batch_size, packing=packing, block_size=x.block_size,
                                 pad_id=x.pad_id, seed=tc.seed, epoch=epoch)

        evals = stage_data.eval_sets(val_items, batch_size=tc.batch_size, packing=packing, block_size=x.block_size,
                                     pad_id=x.pad_id)
        return StageSetup(train_items, val_items, loss_fn, batches_of, evals)


class Preference:
    """`dpo`: chosen / rejected pairs against a reference, the base with the method switched off (or a
    frozen copy of it for methods that write whole models)."""

    sample_kind = "preference"
    needs_reference_copy = True

    def template_cutoff(self, cfg: Config) -> int:
        return cfg.template.cutoff_len

    def build(self, x: StageInputs) -> StageSetup:
        tc = x.cfg.train
        train_items, val_items = _split(stage_data.preference_pairs(x.train_set), x,
                                        lambda ds, _: stage_data.preference_pairs(ds))
        loss_fn = DPOLoss(x.model, beta=tc.dpo_beta, kind=tc.dpo_loss, ref_model=x.ref_model,
                          reference_mode=None if x.ref_model is not None else x.method.adapters_off(x.model))
        if tc.dpo_precompute_ref:
            stage_data.attach_reference_logprobs(loss_fn, train_items + val_items, tc.batch_size, x.pad_id)

        def batches_of(epoch: int):
            return stage_data.pair_batches(train_items, batch_size=tc.batch_size, pad_id=x.pad_id, seed=tc.seed,
                                           epoch=epoch)

        evals = {"val": stage_data.pair_batches(val_items, batch_size=tc.batch_size, pad_id=x.pad_id, seed=0,
                                                epoch=0)} if val_items else {}
        return StageSetup(train_items, val_items, loss_fn, batches_of, evals)


STAGES: dict[str, Stage] = {
    "sft": LanguageModelling("chat", blocks=False),
    "pt": LanguageModelling("text", blocks=True),
    "dpo": Preference(),
}
