"""Training stages, one entry each: which samples a stage takes, how its tokenised data becomes
training items and batches, and which loss trains on them. `run_training` does the rest (model, method,
run directory, loop) the same way for every stage, so a new stage is one more entry in `STAGES`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import nn

from tuneforge.config import Config
from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.io.kto import balance_advice, missing_label, sample_label
from tuneforge.lm_loss import CausalLMLoss
from tuneforge.train import data as stage_data
from tuneforge.train.batching import epoch_batches
from tuneforge.train.grpo import GRPO
from tuneforge.train.step import DPOLoss, KTOLoss, ReferenceFreeLoss

log = logging.getLogger("tuneforge.train")

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
    """Chosen / rejected pairs. `dpo` compares against a reference, the base with the method switched
    off (or a frozen copy of it for methods that write whole models); `orpo` and `simpo` need none."""

    sample_kind = "preference"

    def __init__(self, loss: str):
        self.loss = loss
        self.needs_reference_copy = loss == "dpo"

    def template_cutoff(self, cfg: Config) -> int:
        return cfg.template.cutoff_len

    def loss_fn(self, x: StageInputs) -> nn.Module:
        tc = x.cfg.train
        if self.loss == "orpo":
            return ReferenceFreeLoss(x.model, kind="orpo", beta=tc.orpo_beta)
        if self.loss == "simpo":
            return ReferenceFreeLoss(x.model, kind="simpo", beta=tc.simpo_beta, gamma=tc.simpo_gamma)
        return DPOLoss(x.model, beta=tc.dpo_beta, kind=tc.dpo_loss, ref_model=x.ref_model,
                       reference_mode=None if x.ref_model is not None else x.method.adapters_off(x.model))

    def build(self, x: StageInputs) -> StageSetup:
        tc = x.cfg.train
        train_items, val_items = _split(stage_data.preference_pairs(x.train_set), x,
                                        lambda ds, _: stage_data.preference_pairs(ds))
        loss_fn = self.loss_fn(x)
        if self.loss == "dpo" and tc.dpo_precompute_ref:
            stage_data.attach_reference_logprobs(loss_fn, train_items + val_items, tc.batch_size, x.pad_id)

        def batches_of(epoch: int):
            return stage_data.pair_batches(train_items, batch_size=tc.batch_size, pad_id=x.pad_id, seed=tc.seed,
                                           epoch=epoch)

        evals = {"val": stage_data.pair_batches(val_items, batch_size=tc.batch_size, pad_id=x.pad_id, seed=0,
                                                epoch=0)} if val_items else {}
        return StageSetup(train_items, val_items, loss_fn, batches_of, evals)


class Unpaired:
    """`kto`: chat samples labelled desirable or undesirable (`io.kto`), each alone, against a
    reference as for `dpo`; the loss is on each sample's last reply."""

    sample_kind = "chat"
    needs_reference_copy = True

    def template_cutoff(self, cfg: Config) -> int:
        return cfg.template.cutoff_len

    def build(self, x: StageInputs) -> StageSetup:
        tc = x.cfg.train
        if tc.batch_size < 2:
            raise ConfigError("train.batch_size must be at least 2 for stage kto: its reference point pairs each "
                              "prompt with another example's reply from the same micro-batch")
        for ds in (x.train_set, x.val_set):
            if ds is not None and "weights" in ds.columns:
                raise TuneforgeError("stage kto has no per-token loss: remove the turns' loss_weight from the data")
        items_of = lambda ds, samples: stage_data.unpaired_examples(ds, _labels(samples))  # noqa: E731
        train_items, val_items = _split(items_of(x.train_set, x.samples), x, items_of)
        _check_classes(train_items, tc.kto_desirable_weight, tc.kto_undesirable_weight)
        loss_fn = KTOLoss(x.model, beta=tc.kto_beta, desirable_weight=tc.kto_desirable_weight,
                          undesirable_weight=tc.kto_undesirable_weight, ref_model=x.ref_model,
                          reference_mode=None if x.ref_model is not None else x.method.adapters_off(x.model))

        def batches_of(epoch: int):
            return stage_data.unpaired_batches(train_items, batch_size=tc.batch_size, pad_id=x.pad_id,
                                               seed=tc.seed, epoch=epoch)

        evals = {"val": stage_data.unpaired_batches(val_items, batch_size=tc.batch_size, pad_id=x.pad_id, seed=0,
                                                    epoch=0)} if val_items else {}
        return StageSetup(train_items, val_items, loss_fn, batches_of, evals)


def _labels(samples: Sequence[Any]) -> list[bool]:
    """Every sample's KTO label; the first sample without one stops the run, named by file and line."""
    for s in samples:
        if (why := missing_label(s)) is not None:
            raise TuneforgeError(f"{s.where}: stage kto needs every sample labelled desirable or not (a `label` "
                                 f"column, true or false; LLaMA-Factory's kto_tag), this one has {why}")
    return [bool(sample_label(s)) for s in samples]


def _check_classes(items: Sequence[stage_data.Unpaired], w_desirable: float, w_undesirable: float) -> None:
    """Refuse a set of one class (KTO learns from the contrast); warn when the weighted classes are
    out of balance."""
    n_d = sum(x.desirable for x in items)
    n_u = len(items) - n_d
    if not n_d or not n_u:
        only, missing = ("desirable", "undesirable (label false)") if n_d else ("undesirable", "desirable (label true)")
        raise TuneforgeError(f"stage kto needs both desirable and undesirable examples: all {len(items)} training "
                             f"examples are {only}; add {missing} ones")
    if (advice := balance_advice(n_d, n_u, w_desirable, w_undesirable)) is not None:
        log.warning("kto: %s", advice)


STAGES: dict[str, Stage] = {
    "sft": LanguageModelling("chat", blocks=False),
    "pt": LanguageModelling("text", blocks=True),
    "dpo": Preference("dpo"),
    "kto": Unpaired(),
    "orpo": Preference("orpo"),
    "simpo": Preference("simpo"),
    "grpo": GRPO(),
}
