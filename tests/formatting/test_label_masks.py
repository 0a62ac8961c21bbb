"""Label masks of every template: only assistant replies and their end token are trained.

Expected ids come from `SPECS`, each template's layout written out by hand from its documentation
(not from our renderer), tokenised piece by piece with a reference tokenizer.
"""

from __future__ import annotations

import pytest

from tuneforge.config import TemplateConfig
from tuneforge.formatting import IGNORE, Encoder, SampleRejected, template_names
from tuneforge.types import Message, Sample

QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
ALPACA_SYSTEM = ("Below is an instruction that describes a task. "
                 "Write a response that appropriately completes the request.")
SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHATML_JINJA = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
                "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
                "{{ '<|im_start|>assistant\\n' }}{% endif %}")

CHATML = dict(system="<|im_start|>system\n{}<|im_end|>\n", user="<|im_start|>user\n{}<|im_end|>\n",
              header="<|im_start|>assistant\n", reply="{}<|im_end|>", after="\n")
SPECS = {
    "auto": CHATML,  # the char tokenizer's own template is plain ChatML
    "chatml": CHATML,
    "qwen": {**CHATML, "default_system": QWEN_SYSTEM},
    "llama2": dict(user="<s>[INST] {} [/INST]", first_user_with_system="<s>[INST] <<SYS>>\n{}\n<</SYS>>\n\n{} [/INST]",
                   header="", reply=" {} </s>"),
    "llama3": dict(start="<s>", system="<|start_header_id|>system<|end_header_id|>\n\n{}<|eot_id|>",
                   user="<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>",
                   header="<|start_header_id|>assistant<|end_header_id|>\n\n", reply="{}<|eot_id|>"),
    "mistral": dict(start="<s>", user="[INST] {}[/INST]", first_user_with_system="[INST] {}\n\n{}[/INST]",
                    header="", reply=" {}</s>"),
    "alpaca": dict(system="{}\n\n", default_system=ALPACA_SYSTEM, user="### Instruction:\n{}\n\n",
                   header="### Response:\n", reply="{}</s>", after="\n\n"),
    "human_assistant": dict(system="<s>System: {}\n</s>", user="<s>Human: {}\n</s>", header="<s>Assistant:",
                            reply=" {}</s>"),
    "plain": dict(system="{}\n\n", user="{}\n", header="", reply="{}</s>"),
}
TURNS = [("What is 2+2?", "4."), ("And 3+3?", "It is 6."), ("Say hello in Chinese", "你好。")]
SYSTEM = "Be brief."


def conversation(n_turns: int, system: str | None) -> list[Message]:
    msgs = [Message("system", system)] if system else []
    for user, reply in TURNS[:n_turns]:
        msgs += [Message("user", user), Message("assistant", reply)]
    return msgs


def expected_pieces(spec: dict, n_turns: int, system: str | None) -> list[tuple[str, bool]]:
    """(text, trained) pieces of a conversation, from the hand-written layout."""
    system = system or spec.get("default_system")
    pieces = [(spec.get("start", ""), False)]
    if system and "first_user_with_system" not in spec:
        pieces.append((spec["system"].format(system), False))
    for i, (user, reply) in enumerate(TURNS[:n_turns]):
        if i == 0 and system and "first_user_with_system" in spec:
            pieces.append((spec["first_user_with_system"].format(system, user), False))
        else:
            pieces.append((spec["user"].format(user), False))
        pieces += [(spec["header"], False), (spec["reply"].format(reply), True), (spec.get("after", ""), False)]
    return [(text, trained) for text, trained in pieces if text]


def expected_ids(pieces: list[tuple[str, bool]], tokenize) -> tuple[list[int], list[int]]:
    # Merge neighbours with the same flag before tokenising, as a BPE tokenizer sees them.
    runs: list[list] = []
    for text, trained in pieces:
        if runs and runs[-1][1] == trained:
            runs[-1][0] += text
        else:
            runs.append([text, trained])
    ids, labels = [], []
    for text, trained in runs:
        piece = tokenize(text)
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    return ids, labels


def test_specs_cover_every_registered_template():
    assert set(SPECS) == set(template_names())


@pytest.mark.parametrize("system", [None, SYSTEM], ids=["no-system", "system"])
@pytest.mark.parametrize("n_turns", [1, 2, 3])
@pytest.mark.parametrize("name", list(SPECS))
def test_mask_exact_ids(name, n_turns, system, make_char_tokenizer, char_ids):
    tokenizer = make_char_tokenizer()
    tokenizer.chat_template = CHATML_JINJA
    enc = Encoder.create(tokenizer, TemplateConfig(name=name)).encode(
        Sample(messages=conversation(n_turns, system)))
    ids, labels = expected_ids(expected_pieces(SPECS[name], n_turns, system), char_ids)
    assert enc.input_ids == ids
    assert enc.labels == labels
    # Exactly the replies and their end tokens carry loss, nothing else.
    trained = "".join(tokenizer.decode([t]) for t in enc.labels if t != IGNORE)
    end = {"chatml": "<|im_end|>", "qwen": "<|im_end|>", "auto": "<|im_end|>",
           "llama3": "<|eot_id|>"}.get(name, "</s>")
    assert trained.replace(" ", "") == "".join(r + end for _, r in TURNS[:n_turns]).replace(" ", "")


@pytest.mark.parametrize("system", [None, SYSTEM], ids=["no-system", "system"])
@pytest.mark.parametrize("n_turns", [1, 2, 3])
@pytest.mark.parametrize("name", [n for n in SPECS if n != "llama3"])
def test_mask_exact_ids_with_the_real_bpe_tokenizer(name, n_turns, system, smollm2):
    spec = SPECS[name]
    if name == "auto":
        spec = {**CHATML, "default_system": SMOL_SYSTEM}  # SmolLM2's own template
    pieces = expected_pieces(spec, n_turns, system)
    # SmolLM2's BOS / EOS are <|im_start|> / <|im_end|>; the layouts above spell them <s> / </s>.
    pieces = [(t.replace("</s>", "<|im_end|>").replace("<s>", "<|im_start|>"), f) for t, f in pieces]

    def tokenize(text):
        return smollm2(text, add_special_tokens=False)["input_ids"]

    ids, labels = expected_ids(pieces, tokenize)
    assert ids == tokenize("".join(t for t, _ in pieces))  # what the model sees at inference
    enc = Encoder.create(smollm2, TemplateConfig(name=name)).encode(Sample(messages=conversation(n_turns, system)))
    assert (enc.input_ids, enc.labels) == (ids, labels)
    assert labels[-1 if spec.get("after", "") == "" else -2] == smollm2.convert_tokens_to_ids("<|im_end|>")


def test_a_template_that_splits_where_the_tokenizer_merges_is_reported_not_trained(smollm2):
    # llama3 ends its header with "\n\n"; SmolLM2's BPE tokenises "\n\n" alone as one token but
    # "\n\nWord" as two, so a reply's mask would be shifted by one token.
    with pytest.raises(SampleRejected) as e:
        Encoder.create(smollm2, TemplateConfig(name="llama3")).encode(Sample(messages=conversation(1, None)))
    assert e.value.reason == "template_mismatch"
    assert "ĊĊ" in e.value.detail


def test_train_on_last_and_all(char_tokenizer, char_ids):
    msgs = conversation(2, SYSTEM)
    last = Encoder.create(char_tokenizer, TemplateConfig(name="chatml", train_on="last")).encode(Sample(messages=msgs))
    everything = Encoder.create(char_tokenizer, TemplateConfig(name="chatml", train_on="all")).encode(
        Sample(messages=msgs))
    assert [t for t in last.labels if t != IGNORE] == char_ids("It is 6.<|im_end|>")
    assert last.input_ids == everything.input_ids == everything.labels


def test_tool_calls_are_trained_and_tool_outputs_are_not(char_tokenizer, char_ids):
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    msgs = [Message("user", "2+2?"), Message("assistant", "", tool_calls=[{"name": "add", "arguments": {"a": 2}}]),
            Message("tool", "4", name="add"), Message("assistant", "4.")]
    enc = Encoder.create(char_tokenizer, TemplateConfig(name="qwen")).encode(Sample(messages=msgs, tools=tools))
    call = '<tool_call>\n{"name": "add", "arguments": {"a": 2}}\n</tool_call><|im_end|>'
    assert [t for t in enc.labels if t != IGNORE] == char_ids(call) + char_ids("4.<|im_end|>")
    tool_turn = char_ids("<|im_start|>user\n<tool_response>\n4\n</tool_response><|im_end|>\n")
    text = enc.input_ids
    start = next(i for i in range(len(text)) if text[i:i + len(tool_turn)] == tool_turn)
    assert all(t == IGNORE for t in enc.labels[start:start + len(tool_turn)])


def test_config_system_prompt_applies_only_when_the_sample_has_none(char_tokenizer, char_ids):
    enc = Encoder.create(char_tokenizer, TemplateConfig(name="chatml", system="Be kind."))
    added = enc.encode(Sample(messages=conversation(1, None)))
    kept = enc.encode(Sample(messages=conversation(1, SYSTEM)))
    assert added.input_ids[: len(char_ids("<|im_start|>system\nBe kind."))] == char_ids("<|im_start|>system\nBe kind.")
    assert kept.input_ids[: len(char_ids("<|im_start|>system\nBe brief."))] == char_ids("<|im_start|>system\nBe brief.")
