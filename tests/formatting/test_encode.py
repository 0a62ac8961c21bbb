"""Cutoff policies, raw text, preference pairs and rejection reasons of one-sample encoding."""

from __future__ import annotations

import pytest

from tuneforge.config import TemplateConfig
from tuneforge.formatting import IGNORE, Encoder, SampleRejected
from tuneforge.types import Message, Sample

U1, A1 = Message("user", "First question here?"), Message("assistant", "First answer.")
U2, A2 = Message("user", "Second?"), Message("assistant", "Second answer.")
SYS = Message("system", "Sys.")


def encoder(tokenizer, **cfg) -> Encoder:
    return Encoder.create(tokenizer, TemplateConfig(name="chatml", **cfg))


def chatml(*messages: Message) -> str:
    return "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)


def test_fitting_sample_is_untouched(char_tokenizer, char_ids):
    text = chatml(SYS, U1, A1)
    enc = encoder(char_tokenizer, cutoff_len=len(char_ids(text))).encode(Sample(messages=[SYS, U1, A1]))
    assert enc.input_ids == char_ids(text) and not enc.truncated


def test_truncate_drops_earlier_whole_turns_and_keeps_the_system_prompt(char_tokenizer, char_ids):
    short = chatml(SYS, U2, A2)
    enc = encoder(char_tokenizer, cutoff_len=len(char_ids(short))).encode(Sample(messages=[SYS, U1, A1, U2, A2]))
    assert enc.truncated
    assert enc.input_ids == char_ids(short)
    assert [t for t in enc.labels if t != IGNORE] == char_ids("Second answer.<|im_end|>")


def test_truncate_cuts_the_head_of_the_prompt_content_never_a_header_or_the_reply(char_tokenizer, char_ids):
    reply = char_ids("First answer.<|im_end|>")
    cutoff = len(char_ids(chatml(SYS, U1, A1))) - 1 - len("First ")
    enc = encoder(char_tokenizer, cutoff_len=cutoff).encode(Sample(messages=[SYS, U1, A1]))
    # the untrained trailing newline goes first, then the head of the user's text; headers and reply stay whole
    cut = chatml(SYS, Message("user", "question here?"), A1)[:-1]
    assert enc.truncated and enc.input_ids == char_ids(cut) and len(enc.input_ids) == cutoff
    assert enc.labels[-len(reply):] == reply and set(enc.labels[:-len(reply)]) == {IGNORE}


def test_truncate_drops_a_sample_whose_reply_and_headers_do_not_fit(char_tokenizer, char_ids):
    """Room for the reply plus a few tokens is no room: the rest would be a fragment of a role header."""
    cutoff = len(char_ids("First answer.<|im_end|>")) + 5
    with pytest.raises(SampleRejected) as e:
        encoder(char_tokenizer, cutoff_len=cutoff).encode(Sample(messages=[SYS, U1, A1]))
    assert e.value.reason == "too_long"


def test_truncate_keeps_a_leading_bos(char_tokenizer, char_ids):
    full = char_ids("<s>[INST] First question here? [/INST] First answer. </s>")
    enc = Encoder.create(char_tokenizer, TemplateConfig(name="llama2", cutoff_len=len(full) - 6)).encode(
        Sample(messages=[U1, A1]))
    assert enc.truncated and enc.input_ids[0] == char_tokenizer.bos_token_id
    assert enc.input_ids == char_ids("<s>[INST] question here? [/INST] First answer. </s>")


def test_truncate_drops_a_sample_whose_final_reply_does_not_fit(char_tokenizer, char_ids):
    cutoff = len(char_ids("First answer.<|im_end|>"))  # the reply alone, no room for any prompt
    with pytest.raises(SampleRejected) as e:
        encoder(char_tokenizer, cutoff_len=cutoff).encode(Sample(messages=[U1, A1]))
    assert e.value.reason == "too_long"


def test_drop_policy_drops_anything_too_long(char_tokenizer, char_ids):
    n = len(char_ids(chatml(U1, A1)))
    enc = encoder(char_tokenizer, cutoff_len=n, cutoff_policy="drop")
    assert not enc.encode(Sample(messages=[U1, A1])).truncated
    with pytest.raises(SampleRejected, match="too_long"):
        encoder(char_tokenizer, cutoff_len=n - 1, cutoff_policy="drop").encode(Sample(messages=[U1, A1]))


def test_raw_text_is_text_plus_eos_all_trained(char_tokenizer, char_ids):
    enc = encoder(char_tokenizer).encode(Sample(text="Some document."))
    assert enc.input_ids == enc.labels == char_ids("Some document.</s>")


def test_raw_text_gets_bos_when_the_tokenizer_adds_one(make_char_tokenizer, char_ids):
    from tokenizers.processors import TemplateProcessing

    tokenizer = make_char_tokenizer()
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    assert encoder(tokenizer).encode(Sample(text="ab")).input_ids == char_ids("<s>ab</s>")


def test_raw_text_truncates_or_drops(char_tokenizer, char_ids):
    enc = encoder(char_tokenizer, cutoff_len=4).encode(Sample(text="abcdef"))
    assert enc.truncated and enc.input_ids == char_ids("abcd")
    with pytest.raises(SampleRejected, match="too_long"):
        encoder(char_tokenizer, cutoff_len=4, cutoff_policy="drop").encode(Sample(text="abcdef"))


def test_preference_pair_is_prompt_plus_two_continuations(char_tokenizer, char_ids):
    sample = Sample(messages=[U1], chosen=[Message("assistant", "Good.")], rejected=[Message("assistant", "Bad!")])
    enc = encoder(char_tokenizer).encode(sample)
    assert enc.prompt_ids == char_ids(chatml(U1) + "<|im_start|>assistant\n")
    assert enc.chosen_ids == char_ids("Good.<|im_end|>\n")
    assert enc.chosen_labels == char_ids("Good.<|im_end|>") + [IGNORE]
    assert enc.rejected_ids == char_ids("Bad!<|im_end|>\n")
    assert enc.rejected_labels == char_ids("Bad!<|im_end|>") + [IGNORE]


def test_preference_truncation_cuts_the_prompt_head_only(char_tokenizer, char_ids):
    sample = Sample(messages=[U1], chosen=[Message("assistant", "Good.")], rejected=[Message("assistant", "Bad!")])
    longest = len(char_ids("Good.<|im_end|>\n"))
    prompt = char_ids(chatml(U1) + "<|im_start|>assistant\n")
    enc = encoder(char_tokenizer, cutoff_len=len(prompt) + longest - 6).encode(sample)
    # the head of the user's text goes, never a header
    assert enc.truncated and enc.prompt_ids == char_ids(chatml(Message("user", "question here?"))
                                                        + "<|im_start|>assistant\n")
    assert enc.chosen_ids == char_ids("Good.<|im_end|>\n")
    with pytest.raises(SampleRejected, match="too_long"):
        encoder(char_tokenizer, cutoff_len=longest + 3).encode(sample)
    with pytest.raises(SampleRejected, match="too_long"):
        encoder(char_tokenizer, cutoff_len=longest).encode(sample)


def test_a_conversation_without_a_reply_has_no_trained_tokens(char_tokenizer):
    with pytest.raises(SampleRejected) as e:
        encoder(char_tokenizer).encode(Sample(messages=[U1]))
    assert e.value.reason == "no_trained_tokens"


def test_template_errors_become_rejections(char_tokenizer):
    sample = Sample(messages=[U1, Message("assistant", "", tool_calls=[{"name": "f", "arguments": {}}])])
    with pytest.raises(SampleRejected) as e:
        Encoder.create(char_tokenizer, TemplateConfig(name="alpaca")).encode(sample)
    assert e.value.reason == "template_error" and "tool-call format" in e.value.detail
