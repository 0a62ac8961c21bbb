"""One `Sample` -> token ids and labels (-100 where no loss), with a checked mask and a cutoff policy.

The mask comes from the template's segments: each segment is tokenised on its own, and the
concatenation must equal the tokenisation of the whole rendered text. When it does not (a BPE
merge across a segment boundary, a template that fights the tokenizer), the labels would be
shifted against the text; such a sample is rejected with reason `template_mismatch` and counted,
never trained on.

Every rendering is checked to carry the whole conversation (`coverage.dropped`): a template that
drops tool calls, tool definitions or content rejects the sample with a `template_drops_*` reason.
A sample over the cutoff loses whole earlier exchanges first, then the head of its prompt messages'
contents; a role header is never cut through. What happens when its final reply still does not fit
is `template.cutoff_policy`: `truncate` (the default) drops the sample, `truncate_reply` cuts the prompt
no shorter than half the cutoff and then cuts the reply at the cutoff, training its head; the reply's
end-of-turn / EOS token is then not in the sequence, so it is never trained where the reply did not
end. A preference pair cuts both replies to the same number of tokens (DPO compares their heads).
`drop` drops every sample over the cutoff.

An assistant turn before the first user turn (a greeting that opens an exported chat log) is rendered
as context and not trained: it answers nothing. A `loss_weight` on it says otherwise.

Per-turn `loss_weight`s (LLaMA-Factory v1) are honoured for chat samples: a weight that differs from
its role's default (1 for assistant turns, 0 for the others) overrides `train_on` for that turn. Its
tokens are an assistant turn's trained reply segment (the reply and its end-of-turn token), or another
turn's content as the template renders it (never role headers). Weight 0 leaves them unlabelled, any
other weight labels them; a weight other than 0 and 1 is carried per token in `EncodedLM.weights`
(1 for every other labelled token), which exists only then, so the common path carries nothing extra.
Preference pairs refuse non-default weights: DPO compares whole replies and has no per-token loss.

Rejections carry one of `REASONS`; callers count them and keep going.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from tuneforge.config import TemplateConfig
from tuneforge.constants import IGNORE
from tuneforge.formatting.base import ChatTemplate, Segment, TemplateError, join, prompt_text
from tuneforge.formatting.coverage import DROPS, dropped
from tuneforge.formatting.templates import resolve_template
from tuneforge.types import Message, Sample

REASONS = ("too_long", "template_error", "template_mismatch", "no_trained_tokens", *DROPS)


class SampleRejected(Exception):
    def __init__(self, reason: str, detail: str):
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class EncodedLM:
    """A chat or raw-text sample: one sequence and its labels."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    reply_truncated: bool = False
    """The final reply lost its end to the cutoff (`truncate_reply`); its EOS is not in `input_ids`."""
    weights: list[float] | None = None
    """Per-token loss weights beside `labels` (0 where unlabelled), only when some message's
    `loss_weight` is neither 0 nor 1; None means every labelled token counts once."""


@dataclass
class EncodedPair:
    """A preference sample: the prompt, and each continuation with its own labels (for DPO)."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    chosen_labels: list[int]
    rejected_ids: list[int]
    rejected_labels: list[int]
    truncated: bool = False
    reply_truncated: bool = False


@dataclass(frozen=True)
class Encoder:
    """A tokenizer, a bound template and the template config: everything needed to encode a sample.
    Picklable, so worker processes get a copy."""

    tokenizer: Any
    template: ChatTemplate
    cfg: TemplateConfig
    note: str | None = None
    """Why `template` is not the one the config names (`template: auto` replaced), else None."""

    @classmethod
    def create(cls, tokenizer: Any, cfg: TemplateConfig | None = None, samples: Sequence[Sample] = ()) -> Encoder:
        """`samples`: the data to be encoded, so that `template: auto` can pick a rendering that
        carries their tool calls (see `templates.resolve_template`)."""
        cfg = cfg or TemplateConfig()
        template, note = resolve_template(cfg, tokenizer, samples)
        return cls(tokenizer, template, cfg, note)

    @cached_property
    def text_bos(self) -> list[int]:
        """`[bos]` if the tokenizer adds BOS to plain text by itself (Llama-style), else `[]`."""
        bos = self.tokenizer.bos_token_id
        with_specials = self.tokenizer("a")["input_ids"]
        return [bos] if bos is not None and with_specials[:1] == [bos] else []

    @cached_property
    def special_ids(self) -> frozenset[int]:
        """Named special tokens and every added token marked special: end-of-turn tokens such as
        Llama 3's `<|eot_id|>` are often only the latter."""
        added = (i for i, t in self.tokenizer.added_tokens_decoder.items() if t.special)
        return frozenset([*self.tokenizer.all_special_ids, *added])

    def encode(self, sample: Sample) -> EncodedLM | EncodedPair:
        """Raises `SampleRejected` for a sample that must not be trained on."""
        try:
            sample = with_reasoning(sample, self.cfg.reasoning, None if self.template.reasoning_slot
                                    else self.cfg.reasoning_format)
            if sample.kind == "text":
                return self._text(sample.text or "")
            if sample.kind == "preference":
                turns = [*sample.messages, *(sample.chosen or []), *(sample.rejected or [])]
                if (m := next((m for m in turns if explicit_weight(m) is not None), None)) is not None:
                    raise TemplateError(f"a preference pair with a {m.role} turn of loss_weight {m.loss_weight}: "
                                        "DPO compares whole replies and applies no per-turn weights; remove "
                                        "loss_weight from preference data")
                return self._pair(sample)
            return self._chat(sample)
        except TemplateError as e:
            hint = ""
            if _opens_with_assistant(sample.messages):
                hint = ("; the conversation opens with an assistant turn, which this template may not render: "
                        "choose a template that does (e.g. chatml, llama3) or remove the opening turn")
            raise SampleRejected("template_error", f"{e}{hint}") from None

    # --- pieces ----------------------------------------------------------------------------------

    def _tokenize_pieces(self, pieces: list[str]) -> list[list[int]]:
        """Token ids of each piece, checked against the tokenisation of the joined text."""
        *parts, whole = self.tokenizer(pieces + ["".join(pieces)], add_special_tokens=False)["input_ids"]
        joined = [t for p in parts for t in p]
        if joined != whole:
            k = next((i for i, (a, b) in enumerate(zip(joined, whole)) if a != b), min(len(joined), len(whole)))
            show = self.tokenizer.convert_ids_to_tokens
            raise SampleRejected("template_mismatch", f"token {k}: segment-wise {show(joined[k:k + 3])} but "
                                 f"whole text {show(whole[k:k + 3])}; the template splits where the "
                                 "tokenizer merges")
        return parts

    def _labels(self, ids: list[int], runs: list[tuple[int, int]]) -> list[int]:
        """Labels for `ids` given the [start, end) token runs of assistant replies."""
        if self.cfg.train_on == "all":
            return list(ids)
        labels = [IGNORE] * len(ids)
        for start, end in runs[-1:] if self.cfg.train_on == "last" else runs:
            labels[start:end] = ids[start:end]
        return labels

    def _segments_to_ids(self, segments: list[Segment], prefix: tuple[str, ...] = (),
                         weights: Sequence[float | None] | None = None) -> Tokens:
        """ids, labels and token weights of `segments`. `weights[k]`, where not None, overrides the
        labels of segment k (0: none, else labelled with that weight). Untrained `prefix` pieces are
        part of the tokenisation check but not returned."""
        parts = self._tokenize_pieces([*prefix, *(s.text for s in segments)])[len(prefix):]
        ids: list[int] = []
        runs: list[tuple[int, int]] = []
        spans: list[tuple[int, int]] = []
        for seg, part in zip(segments, parts):
            if seg.trainable:
                runs.append((len(ids), len(ids) + len(part)))
            spans.append((len(ids), len(ids) + len(part)))
            ids += part
        labels = self._labels(ids, runs)
        if weights is None:
            return ids, labels, None
        token_weights = [1.0] * len(ids)
        for (start, end), w in zip(spans, weights):
            if w is not None:
                labels[start:end] = ids[start:end] if w else [IGNORE] * (end - start)
                token_weights[start:end] = [w] * (end - start)
        if all(w in (0.0, 1.0) for w, y in zip(token_weights, labels) if y != IGNORE):
            return ids, labels, None  # 0 / 1 weights are a mask: the labels say it all
        return ids, labels, [w if y != IGNORE else 0.0 for w, y in zip(token_weights, labels)]

    def _encode_messages(self, messages: list[Message], tools: list[dict[str, Any]] | None,
                         checked: bool = False) -> Tokens:
        """ids, labels and token weights of a conversation (`checked`: run the coverage check)."""
        segments = self._render(messages, tools) if checked else self.template.render(messages, tools)
        pieces, weights = weighted_segments(messages, segments, self.template.name)
        return self._segments_to_ids(pieces, weights=weights)

    def _with_system(self, messages: list[Message]) -> list[Message]:
        if self.cfg.system is not None and not (messages and messages[0].role == "system"):
            return [Message("system", self.cfg.system), *messages]
        return messages

    # --- cutoff ----------------------------------------------------------------------------------

    def _too_long(self, n: int) -> SampleRejected:
        return SampleRejected("too_long", f"{n} tokens > cutoff_len {self.cfg.cutoff_len}")

    # --- the three kinds ---------------------------------------------------------------------------

    def _text(self, text: str) -> EncodedLM:
        ids = self.text_bos + self.tokenizer(text, add_special_tokens=False)["input_ids"]
        ids.append(self.tokenizer.eos_token_id)
        if len(ids) <= self.cfg.cutoff_len:
            return EncodedLM(ids, list(ids))
        if self.cfg.cutoff_policy == "drop":
            raise self._too_long(len(ids))
        ids = ids[: self.cfg.cutoff_len]  # a document, not a reply: its end may be cut (counted)
        return EncodedLM(ids, list(ids), truncated=True)

    def _render(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> list[Segment]:
        """The template's segments, checked to carry every content, tool call and tool definition."""
        segments = self.template.render(messages, tools)
        if (missing := dropped(messages, tools, join(segments))) is not None:
            reason, detail = missing
            raise SampleRejected(reason, f"template '{self.template.name}': {detail}")
        return segments

    def _chat(self, sample: Sample) -> EncodedLM:
        messages = _opening_as_context(self._with_system(sample.messages))
        ids, labels, weights = self._encode_messages(messages, sample.tools, checked=True)
        if all(label == IGNORE for label in labels):
            raise SampleRejected("no_trained_tokens", f"train_on={self.cfg.train_on} and the turns' loss_weight "
                                 "leave no token with a loss (no assistant turn?)")
        cutoff = self.cfg.cutoff_len
        if len(ids) <= cutoff:
            return EncodedLM(ids, labels, weights=weights)
        if self.cfg.cutoff_policy == "drop":
            raise self._too_long(len(ids))
        # The prompt (everything before the final reply) gives way first; under `truncate_reply` only
        # down to half the cutoff, the rest of the room being the reply's.
        reply_cut = self.cfg.cutoff_policy == "truncate_reply"

        def spare(labels: list[int]) -> int:
            """Prompt tokens that may still go."""
            return _final_reply_start(labels) - cutoff // 2 if reply_cut else len(labels)

        while (len(ids) > cutoff and spare(labels) > 0
               and (shorter := _without_first_exchange(messages)) is not None):
            messages = shorter
            ids, labels, weights = self._encode_messages(messages, sample.tools)
        ids, labels, weights = self._fit_tail(ids, labels, weights)
        if len(ids) > cutoff:
            last = max(i for i, m in enumerate(messages) if m.role == "assistant")
            # Replies and turns trained by their loss_weight keep their text.
            for i in (j for j in _cuttable(messages, last)
                      if messages[j].role != "assistant" and not explicit_weight(messages[j])):
                while len(ids) > cutoff and (room := spare(labels)) > 0 and messages[i].content:
                    cut = self._cut_text_head(messages[i].content, min(len(ids) - cutoff, room))
                    messages = _with_content(messages, i, cut)
                    ids, labels, weights = self._fit_tail(*self._encode_messages(messages, sample.tools))
        if len(ids) <= cutoff:
            return EncodedLM(ids, labels, truncated=True, weights=weights)
        if reply_cut and _final_reply_start(labels) < cutoff:
            # The reply's head is trained; its end, and the EOS that would close it, are cut off.
            return EncodedLM(ids[:cutoff], labels[:cutoff], truncated=True, reply_truncated=True,
                             weights=None if weights is None else weights[:cutoff])
        raise SampleRejected("too_long", f"the final exchange without its prompt's text is {len(ids)} tokens "
                             f"(the reply and the role headers); cutoff_len is {cutoff}"
                             + ("" if self.cfg.cutoff_policy == "truncate_reply" else
                                " (template.cutoff_policy: truncate_reply would train the reply's head)"))

    def _fit_tail(self, ids: list[int], labels: list[int], weights: list[float] | None) -> Tokens:
        """Over the cutoff, the tokens after the last trained one go first (a separator, or turns after
        the last reply): they never carry loss."""
        if len(ids) <= self.cfg.cutoff_len:
            return ids, labels, weights
        last = max(i for i, label in enumerate(labels) if label != IGNORE)
        return ids[: last + 1], labels[: last + 1], None if weights is None else weights[: last + 1]

    def _cut_text_head(self, text: str, n: int) -> str:
        """`text` without (about) its first `n` tokens; shorter than `text` whenever `text` is not empty."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        rest = self.tokenizer.decode(ids[max(n, 1):]) if n < len(ids) else ""
        return rest if len(rest) < len(text) else ""

    def _pair(self, sample: Sample) -> EncodedPair:
        if not sample.chosen or not sample.rejected:
            raise TemplateError("a preference sample needs both a chosen and a rejected reply")
        prompt = self._with_system(sample.messages)
        for reply in (sample.chosen, sample.rejected):
            self._render([*prompt, *reply], sample.tools)  # the coverage check on each whole conversation
        prompt_ids, conts = self._prompt_and_continuations(prompt, sample)
        if any(all(label == IGNORE for label in labels) for _, labels in conts):
            raise SampleRejected("no_trained_tokens", "a continuation has no trained token")
        longest = max(len(ids) for ids, _ in conts)
        truncated = len(prompt_ids) + longest > self.cfg.cutoff_len
        if truncated and self.cfg.cutoff_policy == "drop":
            raise self._too_long(len(prompt_ids) + longest)
        cutoff = self.cfg.cutoff_len
        floor = cutoff // 2 if self.cfg.cutoff_policy == "truncate_reply" else 0
        # Cut the head of the prompt messages' contents (earliest first, the system prompt last),
        # never through a role header, down to `floor` tokens.
        for i in _cuttable(prompt, len(prompt)):
            while len(prompt_ids) + longest > cutoff and len(prompt_ids) > floor and prompt[i].content:
                excess = min(len(prompt_ids) + longest - cutoff, len(prompt_ids) - floor)
                prompt = _with_content(prompt, i, self._cut_text_head(prompt[i].content, excess))
                prompt_ids, conts = self._prompt_and_continuations(prompt, sample)
                longest = max(len(ids) for ids, _ in conts)
        reply_truncated = len(prompt_ids) + longest > cutoff
        if reply_truncated and self.cfg.cutoff_policy == "truncate_reply" and len(prompt_ids) < cutoff:
            # Both replies keep the same number of leading tokens, as LLaMA-Factory cuts pairs.
            room = cutoff - len(prompt_ids)
            conts = [(ids[:room], labels[:room]) for ids, labels in conts]
            if any(all(label == IGNORE for label in labels) for _, labels in conts):
                raise SampleRejected("no_trained_tokens", f"a reply cut to {room} tokens keeps no trained token")
        elif reply_truncated:
            raise SampleRejected("too_long", f"a reply ({longest} tokens) with the prompt's role headers does not "
                                 f"fit in cutoff_len {cutoff}")
        (c_ids, c_labels), (r_ids, r_labels) = conts
        return EncodedPair(prompt_ids, c_ids, c_labels, r_ids, r_labels, truncated, reply_truncated)

    def _prompt_and_continuations(self, prompt: list[Message], sample: Sample
                                  ) -> tuple[list[int], list[tuple[list[int], list[int]]]]:
        assert sample.chosen is not None and sample.rejected is not None
        head = prompt_text(self.template, prompt, sample.tools)
        conts = [self._continuation(prompt, head, reply, sample.tools) for reply in (sample.chosen, sample.rejected)]
        return self.tokenizer(head, add_special_tokens=False)["input_ids"], conts

    def _continuation(self, prompt: list[Message], head: str, reply: list[Message],
                      tools: list[dict] | None) -> tuple[list[int], list[int]]:
        """ids and labels of `reply` after the prompt text `head` (checked as one tokenisation)."""
        segments = self.template.render([*prompt, *reply], tools)
        if not join(segments).startswith(head):
            raise TemplateError("the prompt with its generation header is not a prefix of the conversation")
        rest: list[Segment] = []
        pos = 0
        for seg in segments:
            end = pos + len(seg.text)
            if end > len(head):
                if pos < len(head):
                    if seg.trainable:
                        raise TemplateError("the generation header ends inside a reply")
                    seg = Segment(seg.text[len(head) - pos:], False)
                rest.append(seg)
            pos = end
        ids, labels, _ = self._segments_to_ids(rest, prefix=(head,))
        return ids, labels


Tokens = tuple[list[int], list[int], "list[float] | None"]
"""ids, labels and per-token weights (None: every labelled token counts once)."""


def explicit_weight(m: Message) -> float | None:
    """`m.loss_weight` where it differs from the role's default (1 for assistant turns, 0 for the
    others), else None: a default weight leaves `train_on` in charge (LLaMA-Factory v1 data spells
    the defaults out on every turn)."""
    if m.loss_weight is None or m.loss_weight == (1.0 if m.role == "assistant" else 0.0):
        return None
    return float(m.loss_weight)


def weighted_segments(messages: list[Message], segments: list[Segment], template: str
                      ) -> tuple[list[Segment], list[float | None] | None]:
    """`segments` split so that each turn with an explicit weight is a piece of its own, and each
    piece's weight (None: `train_on` decides); no weights when no turn has one.

    The rendering is mapped to the messages as the label mask is: the k-th trained segment is the
    k-th assistant turn's reply. Other turns are found by their content, in order, between the
    replies around them; a weighted turn whose text the template does not render as written is
    refused, never guessed."""
    explicit = [explicit_weight(m) for m in messages]
    if all(w is None for w in explicit):
        return segments, None
    text = join(segments)
    replies, pos = [], 0
    for seg in segments:
        if seg.trainable:
            replies.append((pos, pos + len(seg.text)))
        pos += len(seg.text)
    assistant = [i for i, m in enumerate(messages) if m.role == "assistant"]
    if len(replies) != len(assistant):
        raise TemplateError(f"template '{template}' renders {len(assistant)} assistant turns as {len(replies)} "
                            "trained segments, so per-turn loss_weight cannot be placed")
    reply_span = dict(zip(assistant, replies))
    marks: list[tuple[int, int, float]] = []  # (start, end, weight) in characters
    cursor = 0
    for i, m in enumerate(messages):
        if i in reply_span:
            start, end = reply_span[i]
        else:
            limit = next((reply_span[j][0] for j in assistant if j > i), len(text))
            found = _find_content(text, m.content, cursor, limit)
            if found is None:
                if explicit[i]:
                    raise TemplateError(f"template '{template}' does not render the {m.role} turn at position "
                                        f"{i + 1} as written, so its loss_weight {m.loss_weight} cannot be placed")
                continue
            start, end = found
        cursor = end
        if (w := explicit[i]) is not None and end > start:
            marks.append((start, end, w))
    pieces: list[Segment] = []
    weights: list[float | None] = []
    pos = 0
    for seg in segments:
        seg_end = pos + len(seg.text)
        cuts = sorted({pos, seg_end, *(c for s, e, _ in marks for c in (s, e) if pos < c < seg_end)})
        for a, b in zip(cuts, cuts[1:]):
            pieces.append(Segment(text[a:b], seg.trainable))
            weights.append(next((w for s, e, w in marks if s <= a and b <= e), None))
        pos = seg_end
    return pieces, weights


def _find_content(text: str, content: str, start: int, limit: int) -> tuple[int, int] | None:
    """[start, end) of `content` (or its stripped form, as stripping templates render it) in
    `text[start:limit]`; a space just before it joins it, as byte-level BPE glues it to the next word."""
    for body in dict.fromkeys((content, content.strip())):
        if not body:
            return None
        at = text.find(body, start, limit)
        if at >= 0:
            lead = at > start and text[at - 1] == " " and not body.startswith(" ")
            return at - lead, at + len(body)
    return None


def _final_reply_start(labels: list[int]) -> int:
    """Where the last run of labelled tokens (the final reply) starts: the prompt's length in tokens."""
    end = max(i for i, label in enumerate(labels) if label != IGNORE)
    start = end
    while start > 0 and labels[start - 1] != IGNORE:
        start -= 1
    return start


def _opens_with_assistant(messages: list[Message]) -> bool:
    first = next((m for m in messages if m.role != "system"), None)
    return first is not None and first.role == "assistant"


def _opening_as_context(messages: list[Message]) -> list[Message]:
    """Assistant turns before the first user turn get `loss_weight` 0 (unless they carry their own):
    a greeting that opens a chat log answers nothing, so it is context, not a reply to learn. A
    conversation with no user turn at all is left alone."""
    first_user = next((i for i, m in enumerate(messages) if m.role == "user"), None)
    if first_user is None or not any(m.role == "assistant" for m in messages[:first_user]):
        return messages
    return [replace(m, loss_weight=0.0) if i < first_user and m.role == "assistant" and m.loss_weight is None else m
            for i, m in enumerate(messages)]


def _cuttable(messages: list[Message], before: int) -> list[int]:
    """Indices of the messages before `before` whose content may lose its head to fit a cutoff:
    user and tool turns (and given assistant turns of a preference prompt) first, earliest first,
    then the system prompt."""
    return ([i for i in range(before) if messages[i].role != "system"]
            + [i for i in range(before) if messages[i].role == "system"])


def _with_content(messages: list[Message], i: int, content: str) -> list[Message]:
    return [*messages[:i], replace(messages[i], content=content), *messages[i + 1:]]


def _without_first_exchange(messages: list[Message]) -> list[Message] | None:
    """The conversation minus its first user..assistant exchange (system prompt kept), or None
    when only one exchange is left."""
    start = 1 if messages and messages[0].role == "system" else 0
    seen_reply = False
    for j in range(start, len(messages)):
        if messages[j].role == "assistant":
            seen_reply = True
        elif messages[j].role == "user" and seen_reply:
            return messages[:start] + messages[j:]
    return None


def with_reasoning(sample: Sample, mode: str, written_as: str | None) -> Sample:
    """The reasoning traces `mode` keeps: `keep` all, `drop` all, `drop_history` all but the final
    reply's. A kept trace is written into its reply as `written_as` (`{reasoning}` is the trace), so it
    is trained with it; with `written_as` None the template has a slot of its own and the trace stays on
    the message for it. A turn's `loss_weight` stays with it."""
    turns = [*sample.messages, *(sample.chosen or []), *(sample.rejected or [])]
    if all(m.reasoning is None for m in turns):
        return sample

    def rendered(messages: list[Message], final: bool) -> list[Message]:
        last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
        out = []
        for i, m in enumerate(messages):
            if (reasoning := m.reasoning) is not None:
                kept = mode == "keep" or (mode == "drop_history" and final and i == last)
                if not kept:
                    m = replace(m, reasoning=None)
                elif written_as is not None:
                    m = replace(m, content=written_as.replace("{reasoning}", reasoning) + m.content, reasoning=None)
            out.append(m)
        return out

    pair = sample.kind == "preference"
    return replace(sample, messages=rendered(sample.messages, not pair),
                   chosen=None if sample.chosen is None else rendered(sample.chosen, True),
                   rejected=None if sample.rejected is None else rendered(sample.rejected, True))


DROP_WARNING_SHARE = 0.05


def cutoff_drop_warning(too_long: int, samples: int, cutoff_len: int, policy: str) -> str | None:
    """When more than 5% of the samples are dropped for their length: the share and the ways out."""
    if not samples or too_long <= DROP_WARNING_SHARE * samples:
        return None
    ways = f"raise template.cutoff_len (now {cutoff_len})"
    if policy != "truncate_reply":
        ways += (", or set template.cutoff_policy: truncate_reply to train the head of a reply that does not fit "
                 "(its EOS untrained)")
    return (f"{too_long} of {samples} samples ({too_long / samples:.0%}) are dropped as too long for the cutoff: "
            f"{ways}")
