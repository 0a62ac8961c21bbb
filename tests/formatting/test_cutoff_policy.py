"""`template.cutoff_policy: truncate_reply`: the prompt keeps its tail (down to half the cutoff), the
reply is cut at the cutoff and its head trained, and the EOS / end-of-turn of a cut reply is never trained."""

from __future__ import annotations

import json

import pytest

from tuneforge.config import TemplateConfig
from tuneforge.formatting import IGNORE, Encoder, SampleRejected, tokenize_samples
from tuneforge.types import Message, Sample

HI = Message("user", "Hi?")
LONG = Message("assistant", "word " * 10)  # 50 characters
END = "<|im_end|>"


def encode(tokenizer, sample: Sample, cutoff: int, policy: str = "truncate_reply"):
    return Encoder.create(tokenizer, TemplateConfig(name="chatml", cutoff_len=cutoff, cutoff_policy=policy)).encode(
        sample)


def chatml(*messages: Message) -> str:
    return "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)


def test_a_short_prompt_stays_whole_and_the_reply_head_is_trained_without_its_end(char_tokenizer, char_ids):
    prompt = char_ids(chatml(HI) + "<|im_start|>assistant\n")  # 22 tokens, under half of the cutoff
    enc = encode(char_tokenizer, Sample(messages=[HI, LONG]), cutoff=50)
    assert enc.truncated and enc.reply_truncated
    assert enc.input_ids == char_ids(chatml(HI, LONG))[:50]
    assert enc.labels == [IGNORE] * len(prompt) + char_ids(LONG.content)[:50 - len(prompt)]
    assert char_tokenizer.convert_tokens_to_ids(END) not in enc.input_ids[len(prompt):]  # the turn did not end


def test_a_long_prompt_loses_its_head_down_to_half_the_cutoff(char_tokenizer, char_ids):
    user = Message("user", "".join(f"q{i:02d} " for i in range(10)))  # 40 characters
    enc = encode(char_tokenizer, Sample(messages=[user, LONG]), cutoff=60)
    kept = Message("user", user.content[-11:])  # 59 prompt tokens cut to 30: headers whole, the text's tail
    assert enc.reply_truncated and enc.input_ids == char_ids(chatml(kept, LONG))[:60]
    trained = [t for t in enc.labels if t != IGNORE]
    assert enc.labels[:30] == [IGNORE] * 30 and trained == char_ids(LONG.content)[:30]


def test_earlier_exchanges_go_first_and_a_reply_that_fits_keeps_its_end(char_tokenizer, char_ids):
    first, answer = Message("user", "An earlier question."), Message("assistant", "An earlier answer.")
    short = Message("assistant", "Fine.")
    fits = chatml(HI, short)
    enc = encode(char_tokenizer, Sample(messages=[first, answer, HI, short]), cutoff=len(char_ids(fits)))
    assert enc.truncated and not enc.reply_truncated
    assert enc.input_ids == char_ids(fits)
    assert [t for t in enc.labels if t != IGNORE] == char_ids("Fine." + END)  # EOS trained: the reply ended


def test_the_default_policy_drops_what_truncate_reply_keeps_and_says_so(char_tokenizer):
    with pytest.raises(SampleRejected, match="truncate_reply would train the reply's head") as e:
        encode(char_tokenizer, Sample(messages=[HI, LONG]), cutoff=50, policy="truncate")
    assert e.value.reason == "too_long"


def test_no_room_for_the_prompt_headers_is_still_too_long(char_tokenizer, char_ids):
    with pytest.raises(SampleRejected) as e:
        encode(char_tokenizer, Sample(messages=[HI, LONG]), cutoff=10)
    assert e.value.reason == "too_long"


def test_a_preference_pair_cuts_both_replies_to_the_same_room(char_tokenizer, char_ids):
    chosen, rejected = Message("assistant", "good " * 8), Message("assistant", "bad " * 12)
    enc = encode(char_tokenizer, Sample(messages=[HI], chosen=[chosen], rejected=[rejected]), cutoff=50)
    room = 50 - len(char_ids(chatml(HI) + "<|im_start|>assistant\n"))
    assert enc.reply_truncated and len(enc.chosen_ids) == len(enc.rejected_ids) == room
    assert enc.chosen_labels == char_ids(chosen.content)[:room]
    assert enc.rejected_labels == char_ids(rejected.content)[:room]


def test_counts_add_up_and_a_cut_reply_never_trains_a_stop_token(tiny_model_dir, tmp_path):
    """On the default model's tokenizer and its own template: kept whole + prompt-truncated + reply-truncated
    + dropped = samples, and `stop_trained` counts only the replies that ended."""
    from tuneforge.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    samples = [Sample(messages=[Message("user", "Hello?"), Message("assistant", "Hi.")]),
               Sample(messages=[Message("user", "Tell me more. " * 30), Message("assistant", "Sure.")]),
               Sample(messages=[Message("user", "Write a story."), Message("assistant", "Once upon a time. " * 40)]),
               Sample(messages=[Message("user", "Greet."), Message("assistant", "Hello there. " * 5)])]
    cfg = TemplateConfig(cutoff_len=64, cutoff_policy="truncate_reply")
    ds, stats = tokenize_samples(samples, tokenizer, cfg, cache_dir=tmp_path)
    assert (stats.samples, stats.kept, stats.truncated, stats.reply_truncated, stats.dropped) == (4, 4, 2, 1, {})
    assert stats.stop_trained == 3
    story = ds[2]
    assert len(story["input_ids"]) == 64
    last_trained = next(int(t) for t in reversed(story["labels"]) if t != IGNORE)
    assert last_trained not in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    _, default = tokenize_samples(samples, tokenizer, cfg.model_copy(update={"cutoff_policy": "truncate"}),
                                  cache_dir=tmp_path)
    assert (default.kept, default.truncated, default.reply_truncated, default.dropped) == (3, 1, 0, {"too_long": 1})


def test_the_manifest_counts_each_case(tiny_model_dir, tmp_path, capsys):
    from tuneforge.config import build_config
    from tuneforge.train.run import run_training

    rows = [{"instruction": f"Say {i}.", "output": f"{i}."} for i in range(3)]
    rows += [{"instruction": "Tell a long story.", "output": "Once upon a time " * 40}]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": str(data),
                        "template": {"cutoff_len": 64, "cutoff_policy": "truncate_reply"},
                        "train": {"output_dir": str(tmp_path / "run"), "max_steps": 1, "batch_size": 4}})
    run_training(cfg)
    out = capsys.readouterr().out
    assert "4 kept (1 truncated, 1 of them in the reply), 0 dropped" in out and "warning:" not in out
    counts = json.loads((tmp_path / "run" / "manifest.json").read_text())["samples"]
    assert {k: counts[k] for k in ("tokenised", "kept_whole", "prompt_truncated", "reply_truncated", "dropped")} == {
        "tokenised": 4, "kept_whole": 3, "prompt_truncated": 0, "reply_truncated": 1, "dropped": {}}


def test_train_on_all_still_drops_earlier_exchanges_under_the_default_policy(char_tokenizer, char_ids):
    first, answer, short = Message("user", "An earlier question."), Message("assistant", "Earlier."), \
        Message("assistant", "Fine.")
    fits = chatml(HI, short)
    cfg = TemplateConfig(name="chatml", cutoff_len=len(char_ids(fits)), train_on="all")
    enc = Encoder.create(char_tokenizer, cfg).encode(Sample(messages=[first, answer, HI, short]))
    assert enc.truncated and enc.input_ids == char_ids(fits)
