"""Typed configuration: YAML files fill pydantic sections; `--set a.b=c` overrides.

Each section is a small model with `extra="forbid"`, so a misspelled key is an error that names it
and the closest valid key. Attribute docstrings are the documentation shown by `--help` and docs.
The pieces the packages below this one share (the `Section` base, `TemplateConfig`, the methods'
`MethodSettings` base, `read_yaml`, the error messages) live on the ground floor, `tuneforge.settings`.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from tuneforge.errors import ConfigError
from tuneforge.settings import MethodSettings, Section, TemplateConfig, explain_validation, read_yaml

DEFAULT_MODEL = "smollm2-135m-instruct"


class ModelConfig(Section):
    name_or_path: str = DEFAULT_MODEL
    """An alias (`tuneforge models`), a local HF directory, a .gguf file or a hub id in the local cache."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """`auto`: float32 on CPU, bfloat16 on CUDA where supported, else float16."""
    device: str = "auto"
    """`auto`, `cpu`, `cuda`, `cuda:1`, `mps`."""
    quantization: Literal["none", "8bit", "4bit"] = "none"
    """Load the base weights quantised through bitsandbytes (CUDA only)."""
    trust_remote_code: bool = False
    """Run model code shipped with the checkpoint. Off unless you trust its author."""
    revision: str | None = None
    allow_download: bool = False
    """Let a hub id download when it is not in the local cache. Off: tuneforge works offline."""


class DatasetConfig(Section):
    path: str | list[str]
    """Files, folders, globs or a HF `save_to_disk` directory; `info.json#name` picks an entry of a
    LLaMA-Factory `dataset_info.json`; `v1.yaml` (or `v1.yaml#name`) reads the entries of a LLaMA-Factory
    v1 dataset YAML."""
    format: Literal["auto", "alpaca", "sharegpt", "messages", "lf_v1", "text", "preference", "self_instruct",
                    "tuneforge"] = "auto"
    """`auto` tells the format from the first record of each file (`tuneforge data convert --help`)."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Map our field names to the file's columns, e.g. `{instruction: question, output: answer}`."""
    tags: dict[str, str] = Field(default_factory=dict)
    """sharegpt role-tag mapping, e.g. `{role_tag: from, content_tag: value, user_tag: human}`."""
    task: str | None = None
    """Task name for multi-task training; stored on every sample read from this dataset."""
    split: str | None = None
    """For HF dataset directories holding several splits."""
    weight: float | None = Field(None, gt=0)
    """Mixing weight with `data.mix: weights` (relative; defaults to 1)."""
    instruction_prefix: str | None = None
    """Prepended to the first user turn of every sample of this dataset, e.g. `"Translate to French: "`,
    so that one model can tell several tasks apart."""


class DataConfig(Section):
    datasets: list[DatasetConfig] = Field(default_factory=list)
    placeholders: dict[str, str] = Field(default_factory=dict)
    """Values for `{{name}}`-style placeholders in the data (see identity.json)."""
    on_error: Literal["raise", "skip"] = "raise"
    """`raise` stops at the first malformed record with `file:line: reason`; `skip` writes it to the
    rejects file and counts it."""
    rejects_path: str | None = None
    """Where skipped records go (jsonl); default: `rejects.jsonl` beside the output."""
    mix: Literal["concat", "weights", "temperature"] = "concat"
    """Several datasets: `concat` uses each once; `weights` resamples them to the datasets' `weight`
    shares; `temperature` samples dataset i with probability ∝ size_i^(1/T) (T > 1 lifts small tasks)."""
    temperature: float = Field(2.0, gt=0)
    replay: list[DatasetConfig] = Field(default_factory=list)
    """General-domain data mixed into continued pre-training to limit catastrophic forgetting."""
    replay_share: float = Field(0.0, ge=0, lt=1)
    """Share of the training samples drawn from `replay`."""
    allow_dropping: bool = False
    """Train even when tokenising drops more than half the samples (too long for the cutoff, ...) or
    the template cannot render some samples' tool calls, tools or contents. Off: such a run stops
    before training and says why."""


class TrainConfig(Section):
    stage: Literal["sft", "pt", "dpo", "kto", "orpo", "simpo", "grpo"] = "sft"
    """`sft` instruction/chat tuning, `pt` continued pre-training on raw text, `dpo` preference pairs,
    `kto` unpaired good/bad examples, `orpo` and `simpo` reference-free preference pairs, `grpo`
    group-relative policy optimisation with rewards."""
    output_dir: str = "runs/latest"
    """The run directory: config, manifest, metrics, checkpoints, final artefact, report."""
    seed: int = 42
    epochs: float = 1.0
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides `epochs`)."""
    learning_rate: float = Field(2e-4, gt=0)
    weight_decay: float = 0.0
    """AdamW weight decay; never applied to biases, norms or embeddings."""
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    batch_size: int = Field(4, gt=0)
    """Micro-batch size: sequences (or packed rows) per forward pass."""
    grad_accum: int = Field(1, gt=0)
    """Micro-batches per optimizer step; the loss is normalised by the step's total label tokens."""
    max_grad_norm: float | None = 1.0
    packing: bool = True
    """Pack several samples per row (each still attends only to itself); else length-grouped padding."""
    block_size: int | None = Field(None, gt=0)
    """Tokens per packed row, and per block of continued pre-training; default: template.cutoff_len.
    Packed rows must hold the longest sample, so it cannot be below the cutoff there."""
    gradient_checkpointing: bool = False
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """`auto`: bf16 on CUDA where supported, none on CPU."""
    neftune_alpha: float | None = None
    """Add NEFTune noise (alpha / sqrt(T*d), uniform) to input embeddings while training."""
    loss_chunk_size: int = Field(2048, gt=0)
    """Labelled positions per chunk of the fused LM-head + cross-entropy."""
    val_size: float = Field(0.0, ge=0)
    """Held-out share (< 1) or count (>= 1) of the training data for evaluation."""
    eval_every: int | None = None
    """Evaluate every N optimizer steps (and at the end) when there is a validation set."""
    early_stopping_patience: int | None = None
    """Stop after this many evaluations without improvement; the best weights are kept."""
    save_every: int | None = None
    """Write a checkpoint every N optimizer steps (and always on Ctrl-C)."""
    keep_last: int = Field(2, gt=0)
    resume: Literal["auto", "never"] | str = "never"
    """`auto` resumes from the newest checkpoint in `output_dir`; or a checkpoint directory."""
    log_every: int = Field(1, gt=0)
    dpo_beta: float = Field(0.1, gt=0)
    """DPO temperature: how far the policy may move from the reference."""
    dpo_loss: Literal["sigmoid", "ipo"] = "sigmoid"
    dpo_precompute_ref: bool = False
    """Compute the reference log-probs once before training (faster steps, no reference in memory
    during training for full fine-tuning)."""
    kto_beta: float = Field(0.1, gt=0)
    """KTO temperature (β): how far the policy may move from the reference."""
    kto_desirable_weight: float = Field(1.0, gt=0)
    """λ_D, the weight of desirable (`label: true`) examples' losses. Keep λ_D·n_D / (λ_U·n_U) within
    [1, 4/3] (n: the examples of each class); tuneforge warns when it is not."""
    kto_undesirable_weight: float = Field(1.0, gt=0)
    """λ_U, the weight of undesirable (`label: false`) examples' losses."""
    orpo_beta: float = Field(0.1, gt=0)
    """ORPO's λ: the weight of the odds-ratio term beside the SFT loss on the chosen reply."""
    simpo_beta: float = Field(2.0, gt=0)
    """SimPO's β: the scale of the length-normalised reward β/|y|·log π(y|x)."""
    simpo_gamma: float = Field(1.0, ge=0)
    """SimPO's target reward margin γ between the chosen and the rejected reply."""
    grpo: GRPOConfig | None = None
    """Settings of stage `grpo` (online RL with rewards on the model's own samples): `rewards` at least."""

    @model_validator(mode="after")
    def _grpo_has_rewards(self) -> TrainConfig:
        if self.stage == "grpo" and self.grpo is None:
            raise ValueError("stage grpo needs train.grpo with at least `rewards:`, e.g. "
                             "{rewards: [{name: json_schema, json_schema: schema.json}]}")
        return self


class MetricConfig(Section):
    name: str
    """A registered metric (exact_match, contains, rouge_l, bleu, chrf, json_valid, json_schema, regex,
    refusal, length) or, with `function`, a name for your own."""
    function: str | None = None
    """`module:function` of your own metric: `(prediction, reference) -> float | bool | None`."""
    pattern: str | None = None
    """For `regex`: the regular expression an answer must contain (Python `re.search`)."""
    json_schema: dict[str, Any] | str | None = None
    """For `json_schema`: a JSON schema, inline or the path of a .json file."""

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, raw: Any) -> Any:
        return {"name": raw} if isinstance(raw, str) else raw


class GenerationConfig(Section):
    max_new_tokens: int = Field(128, gt=0)
    temperature: float = Field(0.0, ge=0)
    """0 = greedy decoding."""
    top_p: float = Field(1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list)
    """Answers end before the first of these strings."""
    seed: int = 0
    batch_size: int = Field(8, gt=0)
    """Prompts decoding together."""


class ICLConfig(Section):
    k: int = Field(4, ge=0)
    """Examples put before each question (fewer when they do not fit `context_budget`)."""
    selection: Literal["random", "similar"] = "similar"
    """`similar`: the examples nearest to the question by MiniLM embedding; `random`: a seeded draw."""
    pool: list[DatasetConfig] = Field(default_factory=list)
    """Where examples come from; default: the training data (`data.datasets`)."""
    context_budget: int | None = Field(None, gt=0)
    """Most prompt tokens (examples + question); default: the model's context minus `max_new_tokens`."""
    seed: int = 0


class RAGConfig(Section):
    index: str | None = None
    """An index directory written by `tuneforge rag index`."""
    documents: list[str] = Field(default_factory=list)
    """Or documents (files, folders, globs) indexed on the fly into `<output_dir>/rag_index`."""
    top_k: int = Field(3, gt=0)
    """Chunks put into each prompt."""
    retrieval: Literal["hybrid", "dense", "bm25"] = "hybrid"
    """`hybrid` fuses the embedding and BM25 rankings (reciprocal rank fusion)."""
    chunk_tokens: int = Field(128, gt=0)
    chunk_overlap: int = Field(32, ge=0)


class JudgeConfig(Section):
    url: str | None = None
    """Base URL of an OpenAI-compatible API (e.g. http://127.0.0.1:8000/v1); unset: a local model."""
    model: str = DEFAULT_MODEL
    """The judge model: its name at `url`, or a local model (alias, directory) when `url` is unset."""
    api_key_env: str = "OPENAI_API_KEY"
    rubric_file: str | None = None
    """A file replacing the built-in rubric prompt (placeholders {question}, {reference}, {answer})."""
    pairwise_file: str | None = None
    """A file replacing the built-in pairwise prompt ({question}, {reference}, {answer_a}, {answer_b})."""
    pairwise_baseline: str | None = None
    """In `compare`: also judge every method against this one (e.g. zero_shot), A/B in both orders."""
    timeout: float = 60.0
    retries: int = Field(1, ge=0)


class CompareConfig(Section):
    strategies: list[Literal["zero_shot", "few_shot", "rag"]] = Field(
        default_factory=lambda: ["zero_shot", "few_shot", "rag"])
    """Prompting strategies to run on the base model; `rag` only runs when `eval.rag` names a source.
    (`methods`, the old name of this key, is still read, with a warning.)"""
    adapters: dict[str, str] = Field(default_factory=dict)
    """Fine-tuned artefacts by display name, each a trained artefact of any method: a run directory (its
    `final/` and manifest are used) or an artefact directory such as a run's `final/`."""
    primary_metric: str | None = None
    """The quality figure the recommendation ranks by; default: the first of `eval.metrics`."""
    knowledge_changes_often: bool = False
    """The facts the model must know change often (favours RAG: an index is rebuilt in minutes)."""
    hallucination_tolerance: Literal["low", "medium", "high"] = "medium"
    """How costly a confidently wrong answer is (low tolerance favours grounded RAG answers)."""
    max_prompt_tokens: int | None = Field(None, gt=0)
    """Inference budget per query; strategies above it are flagged in the recommendation."""

    @model_validator(mode="before")
    @classmethod
    def _methods_is_strategies(cls, raw: Any) -> Any:
        """`methods`, the deprecated name of `strategies`, still loads (a warning, once per process)."""
        if not (isinstance(raw, dict) and "methods" in raw):
            return raw
        if "strategies" in raw:
            raise ValueError("'methods' is the deprecated name of 'strategies': give only 'strategies'")
        if not getattr(cls, "_warned_methods", False):
            import logging

            logging.getLogger("tuneforge.config").warning(
                "eval.compare.methods is deprecated: call it eval.compare.strategies")
            cls._warned_methods = True
        raw = dict(raw)
        raw["strategies"] = raw.pop("methods")
        return raw


class EvalConfig(Section):
    datasets: list[DatasetConfig] = Field(default_factory=list)
    """The eval set: held-out chat samples whose last assistant turn is the reference answer. During
    training it replaces `train.val_size` as the validation set."""
    limit: int | None = Field(None, gt=0)
    """Evaluate the first N samples only."""
    adapter: str | None = None
    """Evaluate `model` with this artefact of `tuneforge train` (a run directory or its `final/`)."""
    metrics: list[MetricConfig] = Field(default_factory=lambda: [MetricConfig(name=n) for n in (
        "exact_match", "contains", "rouge_l", "bleu", "chrf", "length")])
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    prompting: Literal["zero_shot", "few_shot", "rag"] = "zero_shot"
    """How `tuneforge eval` prompts the model: the question alone, with examples (`icl`), or with
    retrieved context (`rag`). `tuneforge compare` runs every strategy of `compare.strategies` instead."""
    perplexity: bool = True
    """Loss and perplexity of the reference answers (label tokens only) under the model."""
    icl: ICLConfig | None = None
    """Settings of few-shot prompting (default: 4 similar examples from `data.datasets`)."""
    rag: RAGConfig | None = None
    """Settings of retrieval-augmented prompting, with its knowledge source."""
    judge: JudgeConfig | None = None
    """Also score answers 1-10 with an LLM judge (rubric)."""
    forgetting: bool = False
    """With `adapter`: score a general probe (general-text perplexity, everyday instructions) before
    and after the adapter and report the change."""
    contamination: bool = True
    """Check eval prompts and answers for near-copies in the training data (`data.datasets`), when set."""
    compare: CompareConfig = Field(default_factory=CompareConfig)
    output_dir: str = "evals/latest"
    """Where results.jsonl, summary.json and report.html go."""


class RewardConfig(Section):
    name: str
    """A metric (exact_match, contains, rouge_l, bleu, chrf, json_valid, json_schema, regex, refusal), a
    check (`length`: 1 within `min_words`..`max_words`, falling off linearly outside; `format`: 1 when the
    whole reply matches `pattern`), `judge` (an LLM judge's 1-10 score, scaled to 0..1), or, with
    `function`, a name for your own."""
    weight: float = 1.0
    """Its share of the total reward (a weighted sum)."""
    function: str | None = None
    """`module:function` of your own reward: `(completion, reference) -> float | bool | None`."""
    pattern: str | None = None
    """For `regex` (found anywhere) and `format` (the whole reply)."""
    json_schema: dict[str, Any] | str | None = None
    """For `json_schema`: a JSON schema, inline or the path of a .json file."""
    min_words: int = Field(0, ge=0)
    max_words: int | None = Field(None, gt=0)
    """For `length`: the range of words (CJK characters count one each) that scores 1."""
    judge: JudgeConfig | None = None
    """For `judge`: the endpoint and rubric."""

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, raw: Any) -> Any:
        return {"name": raw} if isinstance(raw, str) else raw


class GRPOConfig(Section):
    rewards: list[RewardConfig] = Field(min_length=1)
    """What a completion scores: a weighted sum of these. A reward that raises scores 0 and is counted."""
    generations: int = Field(8, ge=2)
    """Completions sampled per prompt (G); advantages compare each with its group."""
    max_new_tokens: int = Field(64, gt=0)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    beta: float = Field(0.0, ge=0)
    """Weight of the KL penalty to the reference (the model with its adapters off); 0 skips the
    reference pass."""
    epsilon: float = Field(0.2, gt=0)
    """Clip range of the policy ratio (PPO): 1 - epsilon .. 1 + epsilon_high."""
    epsilon_high: float | None = Field(None, gt=0)
    """Upper clip (DAPO's clip-higher); default: `epsilon`."""
    iterations: int = Field(1, ge=1)
    """Optimizer steps on each batch of completions (μ); above 1 the ratio to the sampling policy matters."""
    loss_type: Literal["grpo", "dr_grpo", "dapo"] = "grpo"
    """How token losses are averaged: `grpo` per completion then over completions; `dapo` over all tokens
    of the batch; `dr_grpo` summed and divided by completions × max_new_tokens (no length bias)."""
    scale_rewards: bool = True
    """Divide advantages by their group's reward std (GRPO); Dr. GRPO leaves them unscaled."""
    samples_in_report: int = Field(4, ge=0)
    """Sample completions (with their rewards) logged per step for the run report."""


class Config(Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    template: TemplateConfig = Field(default_factory=TemplateConfig)
    # SerializeAsAny: the resolved config written to a run directory must keep the method's own fields.
    method: SerializeAsAny[MethodSettings] = Field(default_factory=dict, validate_default=True)
    """`{name: lora, r: 16, ...}`: validated by the named method's settings class (default: lora)."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("method", mode="before")
    @classmethod
    def _method_settings(cls, raw: Any) -> Any:
        if isinstance(raw, MethodSettings):
            return raw
        from tuneforge.methods import method_config  # lazily: the methods load torch, a config does not

        return method_config({"name": raw} if isinstance(raw, str) else raw)

    @model_validator(mode="after")
    def _method_fits_the_run(self) -> Config:
        from tuneforge.methods import get_method  # lazily, as above

        get_method(self.method.name).check(self)  # e.g. qlora needs a 4-bit base
        return self


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply `a.b.c=value` to a nested dict, where a number indexes a list (`data.datasets.0.format=alpaca`);
    the value is parsed as YAML (`1e-4`, `true`, `[a, b]`)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. train.seed=1")
    key, raw = assignment.split("=", 1)
    *parents, leaf = key.strip().split(".")

    def index(items: list, part: str) -> int:
        if not (part.isdigit() and int(part) < len(items)):
            raise ConfigError(f"--set {key}: '{part}' is not an index of that list of {len(items)} "
                              f"(0 to {len(items) - 1})")
        return int(part)

    node: Any = tree
    for part in parents:
        node = node[index(node, part)] if isinstance(node, list) else node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"--set {key}: '{part}' is not a section")
    value = read_yaml(raw) if raw.strip() else ""
    if isinstance(node, list):
        node[index(node, leaf)] = value
    else:
        node[leaf] = value


def build_config(tree: dict[str, Any], overrides: list[str] = ()) -> Config:
    tree = dict(tree)
    # `data: file.json` or `data: [a.json, b.json]` is the common case; spell it out (before --set).
    if isinstance(tree.get("data"), (str, list)):
        paths = [tree["data"]] if isinstance(tree["data"], str) else tree["data"]
        tree["data"] = {"datasets": [{"path": p} for p in paths]}
    for assignment in overrides:
        apply_override(tree, assignment)
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(explain_validation(e, Config)) from None


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or none, for defaults) and apply `--set` overrides.

    Relative paths written in the file are relative to the file's own folder (as in curation recipes),
    so a config works from any current directory; `--set` values were typed in the current directory
    and stay relative to it. A data input that does not exist is an error naming its key."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: no such config file")
        try:
            tree = read_yaml(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    try:
        cfg = build_config(tree, overrides)
        written = {}
        if path is not None:
            typed = [a.split("=", 1)[0].strip() for a in overrides]
            written = resolve_paths(cfg, path.parent, skip=typed)
        check_inputs(cfg, written)
        return cfg
    except ConfigError as e:
        raise ConfigError(f"{path or 'config'}: {e}") from None


# --- paths -------------------------------------------------------------------------------------------


@dataclass
class PathField:
    """One path-valued setting of a config: its dotted key, value and how to replace the value."""

    key: str
    value: str
    assign: Callable[[str], None]
    kind: Literal["input", "output", "model"]
    """`input` must exist when the config loads; `output` (run and eval directories, adapters, indexes)
    may be written by a later command; `model` is a path only when it exists (else an alias / hub id)."""


def path_fields(cfg: Config) -> Iterator[PathField]:
    """Every setting of `cfg` that holds a file-system path, explicitly set (defaults stay as they are)."""
    def attr(key: str, owner: BaseModel, name: str, kind: Any) -> Iterator[PathField]:
        value = getattr(owner, name)
        if name in owner.model_fields_set and isinstance(value, str):
            yield PathField(key, value, lambda v: setattr(owner, name, v), kind)

    def items(key: str, values: list[str], kind: Any) -> Iterator[PathField]:
        for i, value in enumerate(values):
            yield PathField(f"{key}.{i}", value, lambda v, i=i: values.__setitem__(i, v), kind)

    def datasets(key: str, specs: list[DatasetConfig]) -> Iterator[PathField]:
        for i, d in enumerate(specs):
            if isinstance(d.path, str):
                yield from attr(f"{key}.{i}.path", d, "path", "input")
            else:
                yield from items(f"{key}.{i}.path", d.path, "input")

    yield from attr("model.name_or_path", cfg.model, "name_or_path", "model")
    yield from datasets("data.datasets", cfg.data.datasets)
    yield from datasets("data.replay", cfg.data.replay)
    yield from attr("data.rejects_path", cfg.data, "rejects_path", "output")
    yield from attr("train.output_dir", cfg.train, "output_dir", "output")
    if cfg.train.resume not in ("auto", "never"):
        yield from attr("train.resume", cfg.train, "resume", "output")
    ev = cfg.eval
    yield from datasets("eval.datasets", ev.datasets)
    yield from attr("eval.adapter", ev, "adapter", "output")
    yield from attr("eval.output_dir", ev, "output_dir", "output")
    for i, metric in enumerate(ev.metrics):
        yield from attr(f"eval.metrics.{i}.json_schema", metric, "json_schema", "input")
    for i, reward in enumerate(cfg.train.grpo.rewards if cfg.train.grpo else []):
        yield from attr(f"train.grpo.rewards.{i}.json_schema", reward, "json_schema", "input")
        if reward.judge is not None:
            yield from attr(f"train.grpo.rewards.{i}.judge.rubric_file", reward.judge, "rubric_file", "input")
    if ev.icl is not None:
        yield from datasets("eval.icl.pool", ev.icl.pool)
    if ev.rag is not None:
        yield from attr("eval.rag.index", ev.rag, "index", "output")
        yield from items("eval.rag.documents", ev.rag.documents, "input")
    if ev.judge is not None:
        yield from attr("eval.judge.rubric_file", ev.judge, "rubric_file", "input")
        yield from attr("eval.judge.pairwise_file", ev.judge, "pairwise_file", "input")
    adapters = ev.compare.adapters
    for name in adapters:
        yield PathField(f"eval.compare.adapters.{name}", adapters[name],
                        lambda v, name=name: adapters.__setitem__(name, v), "output")


def resolve_paths(cfg: Config, base: Path, skip: Iterable[str] = ()) -> dict[str, str]:
    """Make the relative paths of `cfg` relative to `base` (a YAML file's folder), except under the keys
    in `skip` (`--set` overrides, typed relative to the current directory). `~` is expanded; a
    `dataset_info.json#entry` keeps its entry; a model name counts as a path only when `base` holds it
    (else it is an alias or a hub id). Returns the values as written, by key, of what it changed."""
    skip, written = list(skip), {}
    for field in path_fields(cfg):
        if any(field.key == s or field.key.startswith(s + ".") for s in skip):
            continue
        file, sep, entry = field.value.partition("#") if _is_entry(field.value) else (field.value, "", "")
        resolved = Path(file).expanduser()
        if not resolved.is_absolute():
            resolved = Path(os.path.normpath(base.absolute() / resolved))
            if field.kind == "model" and not (resolved.is_dir() or resolved.suffix == ".gguf" and resolved.is_file()):
                continue
        written[field.key] = field.value
        field.assign(str(resolved) + sep + entry)
    return written


def check_inputs(cfg: Config, written: dict[str, str] | None = None) -> None:
    """Every data input `cfg` names exists (a glob matches something), else an error naming the key.
    `written`: the values as the config file had them, before `resolve_paths`."""
    written = written or {}
    for field in path_fields(cfg):
        file = field.value.partition("#")[0] if _is_entry(field.value) else field.value
        if field.kind != "input" or (glob.glob(file, recursive=True) if any(c in file for c in "*?[")
                                     else Path(file).exists()):
            continue
        msg = f"'{field.key}': {file}: no such file or directory"
        if field.key in written:
            msg += (f" ({written[field.key]!r} in the config file; relative paths there are relative to the "
                    "file's own folder)")
        elif not Path(file).is_absolute():
            msg += f" (relative to the current directory, {os.getcwd()})"
        raise ConfigError(msg)


def _is_entry(path: str) -> bool:
    """`info.json#name` / `v1.yaml#name`: an entry of a LLaMA-Factory dataset_info.json or v1 dataset YAML
    (as tuneforge.io reads them)."""
    return "#" in path and path.split("#", 1)[0].endswith((".json", ".yaml", ".yml"))
