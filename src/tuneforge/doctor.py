"""Pre-flight checks: what a training run would actually see, before it spends any compute.

Catches the set-ups that train silently wrong: a cutoff that drops most samples, labels that are
all masked, an EOS / end-of-turn token that is never trained (the model never learns to stop),
pad == eos (any trainer that masks labels by pad id never trains EOS), chat templates whose
turn-by-turn tokenisation differs from the whole conversation's (a shifted loss mask), and a default
system prompt that names another assistant than the data's replies do (an identity that fights itself),
a template that drops tool calls, tool definitions or contents, and `{{placeholders}}` left unfilled.
It follows the stage: continued pre-training (`pt`) packs documents into blocks, so nothing is cut;
preference stages need preference pairs; `kto` needs a label on every sample and both classes.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from tuneforge.config import Config, TemplateConfig
from tuneforge.types import Message, Sample

Level = Literal["error", "warning", "info"]
UNLIMITED = 1 << 30


@dataclass
class Finding:
    level: Level
    code: str
    message: str


@dataclass
class DoctorReport:
    model: str
    template: str
    cutoff_len: int
    cutoff_policy: str
    samples: int
    kept: int
    truncated: int
    dropped: dict[str, int]
    read_rejected: int
    length_percentiles: dict[str, int]
    """Untruncated tokens per sample: p50, p90, p95, p99, max."""
    histogram: list[tuple[int, int, int]]
    """(from, to, count) bins of untruncated lengths."""
    over_cutoff: int
    trained_fraction: float
    stop_trained: int
    pad_token: str | None
    eos_token: str | None
    findings: list[Finding] = field(default_factory=list)
    stage: str = "sft"
    placeholders: dict[str, int] = field(default_factory=dict)
    """`{{name}}` placeholders left in the data -> samples holding them."""
    reply_truncated: int = 0
    """Of `truncated`, samples whose final reply was cut (`cutoff_policy: truncate_reply`)."""

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _percentiles(lengths: np.ndarray) -> dict[str, int]:
    if lengths.size == 0:
        return {}
    qs = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
    out = {k: int(np.percentile(lengths, q)) for k, q in qs.items()}
    out["max"] = int(lengths.max())
    return out


def _histogram(lengths: np.ndarray, bins: int = 10) -> list[tuple[int, int, int]]:
    if lengths.size == 0:
        return []
    counts, edges = np.histogram(lengths, bins=bins)
    return [(int(edges[i]), int(edges[i + 1]), int(c)) for i, c in enumerate(counts)]


def run_doctor(cfg: Config) -> DoctorReport:
    from tuneforge.formatting import tokenize_samples
    from tuneforge.io import read_samples
    from tuneforge.models import load_tokenizer

    samples, read_report = read_samples(cfg.data)
    tokenizer = load_tokenizer(cfg.model)
    tcfg = cfg.template
    pt = cfg.train.stage == "pt"
    # Once without a cutoff for the true length distribution, once as the run would see it (pre-training
    # documents are packed into blocks, never cut).
    full, full_stats = tokenize_samples(samples, tokenizer, tcfg.model_copy(update={"cutoff_len": UNLIMITED}))
    ds, stats = (full, full_stats) if pt else tokenize_samples(samples, tokenizer, tcfg)
    lengths = np.asarray(full.lengths)

    report = DoctorReport(
        model=cfg.model.name_or_path, template=stats.template or (tcfg.jinja and "custom jinja" or tcfg.name),
        cutoff_len=tcfg.cutoff_len, cutoff_policy=tcfg.cutoff_policy, samples=stats.samples, kept=stats.kept,
        truncated=stats.truncated, dropped=dict(stats.dropped), read_rejected=read_report.n_rejected,
        length_percentiles=_percentiles(lengths), histogram=_histogram(lengths),
        over_cutoff=0 if pt else int((lengths > tcfg.cutoff_len).sum()), trained_fraction=stats.trained_fraction,
        stop_trained=stats.stop_trained, pad_token=tokenizer.pad_token, eos_token=tokenizer.eos_token,
        stage=cfg.train.stage, placeholders=placeholder_counts(samples), reply_truncated=stats.reply_truncated,
    )
    report.findings = (_template_findings(report, stats) + _diagnose(report, stats, tokenizer, ds)
                       + _pretraining_findings(report, cfg, ds) + _placeholder_findings(report)
                       + _identity_findings(samples, tokenizer, tcfg) + _speed_findings(cfg) + _busy_machine_findings()
                       + _stage_findings(cfg, samples))
    return report


def _stage_findings(cfg: Config, samples: list[Sample]) -> list[Finding]:
    """What the stage needs of the data: its kind of sample; for kto a label on every sample, both
    classes, and weights that balance them."""
    from tuneforge.io.kto import balance_advice, missing_label, sample_label
    from tuneforge.train.stages import STAGES

    tc, stage = cfg.train, STAGES.get(cfg.train.stage)
    kinds = sorted({s.kind for s in samples})
    if stage is not None and samples and kinds != [stage.sample_kind]:
        return [Finding("error", "stage_data_kind", f"train.stage={tc.stage} needs {stage.sample_kind} samples, "
                                                    f"the data holds {', '.join(kinds)}")]
    if tc.stage != "kto" or not samples:
        return []
    unlabelled = [(s, why) for s in samples if (why := missing_label(s)) is not None]
    if unlabelled:
        first, why = unlabelled[0]
        return [Finding("error", "kto_unlabelled", f"{len(unlabelled)} of {len(samples)} samples have no KTO label "
                                                   f"(first: {first.where}: {why}); give each a `label` column, "
                                                   f"true (desirable) or false")]
    n_d = sum(1 for s in samples if sample_label(s))
    n_u = len(samples) - n_d
    if not n_d or not n_u:
        return [Finding("error", "kto_one_class", f"all {len(samples)} samples are "
                                                  f"{'desirable' if n_d else 'undesirable'}: KTO needs both classes")]
    if (advice := balance_advice(n_d, n_u, tc.kto_desirable_weight, tc.kto_undesirable_weight)) is not None:
        return [Finding("warning", "kto_unbalanced", advice)]
    return [Finding("info", "kto_classes", f"{n_d} desirable and {n_u} undesirable examples")]


def placeholder_counts(samples: list[Sample]) -> dict[str, int]:
    """`{{name}}` placeholders still in the samples -> how many samples hold each."""
    from tuneforge.io.placeholders import find_placeholders

    counts: Counter[str] = Counter()
    for s in samples:
        counts.update(find_placeholders(s.to_dict()))
    return dict(sorted(counts.items()))


def placeholder_message(name: str, n: int) -> str:
    return (f"{n} samples still hold {{{{{name}}}}}: the model would learn the literal placeholder. Fill it with "
            f"data.placeholders (CLI: --set-placeholder {name}=VALUE).")


def _placeholder_findings(r: DoctorReport) -> list[Finding]:
    return [Finding("warning", "unfilled_placeholder", placeholder_message(name, n))
            for name, n in r.placeholders.items()]


def _template_findings(r: DoctorReport, stats) -> list[Finding]:
    """`template: auto` replaced by a tool-capable built-in (info); samples whose rendering drops tool
    calls, tool definitions or contents (an error: `train` stops on them)."""
    from tuneforge.formatting import tool_templates

    out = [Finding("info", "template_replaced", stats.template_note)] if stats.template_note else []
    if drops := stats.template_drops:
        what = ", ".join(f"{n} of {r.samples} samples by {reason}" for reason, n in sorted(drops.items()))
        example = next((f" First: {j.where}: {j.detail}." for j in stats.rejects if j.reason in drops), "")
        out.append(Finding("error", "template_drops", f"template '{r.template}' does not render everything the "
                           f"data holds: {what}; they are excluded.{example} Templates that render tools and tool "
                           f"calls: {', '.join(tool_templates())} (template.name)."))
    return out


def _pretraining_findings(r: DoctorReport, cfg: Config, ds) -> list[Finding]:
    """Continued pre-training: documents end with EOS and are packed into blocks of `train.block_size`
    (else the cutoff), so the cutoff drops nothing and no end-of-turn token is involved."""
    if r.stage != "pt" or not r.kept:
        return []
    block = cfg.train.block_size or r.cutoff_len
    tokens = int(ds.lengths.sum())
    return [Finding("info", "pretraining_blocks",
                    f"stage pt: {r.kept} documents, {tokens} tokens, each ending with EOS "
                    f"({r.eos_token!r}), concatenated and cut into about {max(tokens // block, 1)} blocks of "
                    f"{block} tokens; no document is dropped or truncated for its length.")]


# How a text names an assistant: "I am Forge", "my name is Forge", "named SmolLM", "You are Qwen",
# "我是 Forge". The name must start with a capital letter ("I am a ..." names no one).
_NAMES = re.compile(r"(?:(?i:\bI am|\bI['’]m|\bmy name is|\bcall me|\bnamed|\bcalled|\byou are)\s+"
                    r"|(?:我是|我叫|名叫)\s*)([A-Z][A-Za-z0-9_-]+)")
_SPECIAL = re.compile(r"<\|[^|>]*\|>")  # <|im_start|> and the like, left out of messages


def assistant_names(text: str) -> set[str]:
    """The names `text` gives an assistant, by the phrases of `_NAMES`."""
    return set(_NAMES.findall(text))


def _identity_findings(samples: list[Sample], tokenizer, tcfg: TemplateConfig) -> list[Finding]:
    """A sample without a system message gets the system prompt the template injects (or `template.system`).
    When that prompt names an assistant ("named SmolLM") and the replies name another one ("I am Forge",
    the name most replies give, at least twice), every sample trains two identities at once."""
    from tuneforge.formatting import TemplateError, load_template

    replies = Counter(name for s in samples if not (s.messages and s.messages[0].role == "system")
                      for name in set().union(*(assistant_names(m.content) for m in s.messages
                                                if m.role == "assistant")))
    if not replies or replies.most_common(1)[0][1] < 2:
        return []
    data_name, n = replies.most_common(1)[0]
    marker = "\x00question\x00"
    conversation = ([Message("system", tcfg.system)] if tcfg.system is not None else []) + [Message("user", marker)]
    try:
        text = "".join(seg.text for seg in load_template(tcfg, tokenizer).render(conversation))
    except TemplateError:
        return []  # the template cannot render a bare question; other checks report it
    lines = [_SPECIAL.sub("", line).strip() for line in text.split(marker, 1)[0].splitlines()]
    lines = [line for line in lines if assistant_names(line)]
    named = set().union(*map(assistant_names, lines))
    if not named or data_name.lower() in {x.lower() for x in named}:
        return []
    return [Finding("warning", "template_default_system",
                    f"samples without a system message get the system prompt {' '.join(lines)!r}, which names the "
                    f"assistant {', '.join(sorted(named))}, while {n} replies name it {data_name}: the model learns "
                    f"both. Set template.system (e.g. 'You are {data_name}, ...') or give the samples a system "
                    "message.")]


def _speed_findings(cfg: Config) -> list[Finding]:
    """A LoRA run with dropout on CPU, without the compiled LoRA kernels: ~10% slower steps, fixable."""
    import torch

    from tuneforge.native import lora_kernels

    device = cfg.model.device
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available()
                                 and not torch.backends.mps.is_available())
    if not getattr(cfg.method, "dropout", 0) or not on_cpu:  # only LoRA's settings have a dropout
        return []
    if lora_kernels.library() is not None:
        return []
    return [Finding("info", "lora_kernels_unavailable",
                    "tuneforge's CPU kernels could not be built (no working C compiler, or TUNEFORGE_NATIVE=0): "
                    "LoRA dropout runs on torch operations, ~10% slower per step. Install a C compiler (cc) "
                    "or set method.dropout: 0.")]


def _busy_machine_findings() -> list[Finding]:
    """Other processes keep cores busy: say how many threads a run started now would take, and why."""
    import os

    from tuneforge.threads import available_cores, default_threads

    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return []
    if load <= cores:
        return []
    return [Finding("warning", "machine_busy",
                    f"the 1-minute load average is {load:.1f} on {cores} available cores: other processes compete "
                    f"for the CPU. A run started now uses {default_threads()} torch thread(s), the cores left free "
                    f"(threads waiting on cores held by others slow every step); --threads N on train, eval and "
                    f"serve sets it.")]


def _diagnose(r: DoctorReport, stats, tokenizer, ds) -> list[Finding]:
    out: list[Finding] = []
    add = lambda level, code, msg: out.append(Finding(level, code, msg))  # noqa: E731
    if r.samples == 0:
        add("error", "no_samples", "the data holds no samples")
        return out

    too_long = r.dropped.get("too_long", 0)
    if too_long:
        from tuneforge.formatting.encode import cutoff_drop_warning

        share = too_long / r.samples
        level = "error" if share > 0.5 else "warning"
        ways = (cutoff_drop_warning(too_long, r.samples, r.cutoff_len, r.cutoff_policy)
                or f"{too_long} of {r.samples} samples ({share:.0%}) are dropped: raise template.cutoff_len")
        add(level, "cutoff_drops", f"{ways}. Their reply does not fit in cutoff_len={r.cutoff_len} (p95 length is "
            f"{r.length_percentiles.get('p95')}).")
    if r.truncated:
        replies = (f"; {r.reply_truncated} of them lose the end of their final reply, trained without its EOS"
                   if r.reply_truncated else "; replies kept whole")
        add("info", "truncated", f"{r.truncated} samples are truncated to fit the cutoff (earlier turns or the "
            f"prompt's head removed{replies}).")

    masked = r.dropped.get("no_trained_tokens", 0)
    if masked:
        add("error" if masked == r.samples else "warning", "all_labels_masked",
            f"{masked} samples have every label masked (nothing to learn from them); check train_on and the "
            f"roles in the data.")

    mismatched = r.dropped.get("template_mismatch", 0) + r.dropped.get("template_error", 0)
    if mismatched:
        example = next((f"{j.where}: {j.detail}" for j in stats.rejects if j.reason.startswith("template")), "")
        add("error" if mismatched > 0.05 * r.samples else "warning", "template_round_trip",
            f"{mismatched} samples fail the template round trip (turn-by-turn tokens differ from the whole "
            f"conversation's, so the loss mask would be shifted); they are excluded. First: {example}")

    if r.kept and ds.kind == "lm" and r.stage == "pt":
        if r.stop_trained < r.kept:
            add("warning", "eos_sometimes_trained", f"only {r.stop_trained} of {r.kept} documents end with a "
                f"trained EOS ({r.eos_token!r}): the model will not learn where a document ends.")
    elif r.kept and ds.kind == "lm":
        if r.stop_trained == 0:
            add("error", "eos_never_trained", "no sample trains its EOS / end-of-turn token: the model will "
                "not learn to stop. Use a template whose assistant turns end with a trained stop token.")
        elif r.stop_trained < r.kept:
            add("warning", "eos_sometimes_trained", f"only {r.stop_trained} of {r.kept} samples train a stop token.")

    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    if pad_id is not None and pad_id == eos_id:
        # tuneforge masks padding by position, so this only matters for the data's reuse elsewhere: info.
        add("info", "pad_is_eos",
            f"pad token == EOS ({tokenizer.eos_token!r}, id {eos_id}): a collator that masks labels by pad id "
            f"(as generic language-modelling collators do) would never train EOS, and the model would not learn "
            f"to stop. tuneforge masks padding by position, so EOS is trained here ({r.stop_trained} of {r.kept} "
            f"samples); do not reuse this data with a pad-id-masking trainer.")

    if r.kept:
        add("info", "trained_fraction", f"{r.trained_fraction:.1%} of tokens carry loss")
    if r.read_rejected:
        add("warning", "read_rejects", f"{r.read_rejected} input records were rejected while reading")
    return out
