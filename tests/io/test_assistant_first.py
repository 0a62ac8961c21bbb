"""A conversation that opens with an assistant turn (a greeting before the user speaks, as exported chat
logs do): read as written, rendered by the tokenizer's own template and the built-ins, the greeting given
as context and not trained; a template that cannot render it rejects the sample naming file and line."""

from __future__ import annotations

import pytest

from tuneforge.config import TemplateConfig
from tuneforge.constants import IGNORE
from tuneforge.formatting import Encoder, tokenize_samples
from tuneforge.io import read_samples
from tuneforge.types import Message, Sample

GREETING, QUESTION, ANSWER = "Hello! I am Forge, how can I help?", "What is 2 + 2?", "2 + 2 is 4."
SHAREGPT = {"conversations": [{"from": "gpt", "value": GREETING}, {"from": "human", "value": QUESTION},
                              {"from": "gpt", "value": ANSWER}]}
MESSAGES = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": GREETING},
                         {"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from tuneforge.models import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


@pytest.mark.parametrize("record", [SHAREGPT, MESSAGES], ids=["sharegpt", "openai"])
@pytest.mark.parametrize("template", ["auto", "chatml", "qwen"])
def test_the_greeting_is_rendered_as_context_and_the_answer_trained(write, tokenizer, record, template):
    samples, report = read_samples(str(write("chat.jsonl", [record])))
    assert report.n_rejected == 0 and samples[0].messages[-3].role == "assistant"
    ds, stats = tokenize_samples(samples, tokenizer, TemplateConfig(name=template), use_cache=False)
    assert stats.kept == 1, stats.rejects
    ids, labels = ds["input_ids"][0].tolist(), ds["labels"][0].tolist()
    assert GREETING in tokenizer.decode(ids)
    trained = tokenizer.decode([t for t in labels if t != IGNORE])
    assert trained.startswith(ANSWER) and GREETING not in trained
    assert stats.stop_trained == 1  # the answer's end-of-turn token is trained


def test_a_loss_weight_on_the_greeting_trains_it(tokenizer):
    sample = Sample(messages=[Message("assistant", GREETING, loss_weight=1.0), Message("user", QUESTION),
                              Message("assistant", ANSWER)])
    enc = Encoder.create(tokenizer, TemplateConfig(name="chatml")).encode(sample)
    trained = tokenizer.decode([t for t in enc.labels if t != IGNORE])
    assert trained.startswith(GREETING) and ANSWER in trained


def test_assistant_turns_only_are_still_trained(tokenizer):
    """No user turn at all (a monologue, a style sample): nothing is an opening greeting."""
    monologue = Sample(messages=[Message("assistant", ANSWER)])
    enc = Encoder.create(tokenizer, TemplateConfig(name="chatml")).encode(monologue)
    assert tokenizer.decode([t for t in enc.labels if t != IGNORE]).startswith(ANSWER)


def test_a_template_that_refuses_it_names_the_file_line_and_the_way_out(write, tokenizer):
    strict = ("{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start with a user "
              "turn') }}{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
              "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    ok = {"conversations": [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": ANSWER}]}
    path = write("chat.jsonl", [ok, SHAREGPT])
    samples, _ = read_samples(str(path))
    _, stats = tokenize_samples(samples, tokenizer, TemplateConfig(jinja=strict), use_cache=False)
    assert (stats.kept, stats.dropped) == (1, {"template_error": 1})
    reject = stats.rejects[0]
    assert reject.where == f"{path}:2"
    assert "Conversations must start with a user turn" in reject.detail
    assert "opens with an assistant turn" in reject.detail and "chatml" in reject.detail
