"""The chat template a run was trained with goes with its artefact: every built-in written as Jinja renders
exactly like the built-in, export puts it into the exported tokenizer, and the engine formats each
adapter's prompts with it."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import yaml
from tests.serve.conftest import QUESTIONS, REPLIES
from tests.serve.test_engine import random_artefact

from tuneforge.config import build_config
from tuneforge.export.merge import export
from tuneforge.formatting import BUILTIN_TEMPLATES, load_template, prompt_text
from tuneforge.formatting.base import join
from tuneforge.formatting.jinja import _hf_message
from tuneforge.serve.sampling import SamplingParams
from tuneforge.types import Message

SYSTEM = Message("system", "Be terse.")
USER, REPLY, USER2 = Message("user", "Hi, who are you?"), Message("assistant", "A helper."), Message("user", "And?")
# What the model is asked to answer: 1 and 2 user turns, with and without a system prompt.
PROMPTS = [[USER], [SYSTEM, USER], [USER, REPLY, USER2], [SYSTEM, USER, REPLY, USER2]]
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "weather", "description": "Weather in a city", "parameters": CITY}}]
TOOL_CHAT = [Message("user", "Weather in Paris and Rome?"),
             Message("assistant", "Checking.", tool_calls=[{"name": "weather", "arguments": {"city": "Paris"}},
                                                            {"name": "weather", "arguments": {"city": "Rome"}}]),
             Message("tool", "sunny", name="weather"), Message("tool", "rainy", name="weather"),
             Message("assistant", "Paris is sunny, Rome rainy.")]


def hf(messages: list[Message]) -> list[dict]:
    return [_hf_message(m) for m in messages]


@pytest.mark.parametrize("spec", BUILTIN_TEMPLATES, ids=lambda s: s.name)
def test_every_builtin_written_as_jinja_renders_the_same_text(spec, tokenizer):
    template, source = spec.build(tokenizer), spec.chat_template()
    cases = [(p, None) for p in PROMPTS] + [(p + [REPLY], None) for p in PROMPTS]
    if spec.format.tools is not None:
        cases += [(TOOL_CHAT, TOOLS), (TOOL_CHAT[:4], TOOLS)]
    for messages, tools in cases:
        for generation_prompt in (True, False):
            ours = join(template.render(messages, tools, add_generation_prompt=generation_prompt))
            assert tokenizer.apply_chat_template(hf(messages), tools=tools, chat_template=source, tokenize=False,
                                                 add_generation_prompt=generation_prompt) == ours
    # What the built-in refuses, the Jinja refuses too.
    with pytest.raises(Exception, match="only the first message may be a system prompt"):
        tokenizer.apply_chat_template(hf([USER, SYSTEM]), chat_template=source, tokenize=False)
    if spec.format.tools is None:
        with pytest.raises(Exception, match="no tool-call format"):
            tokenizer.apply_chat_template(hf(TOOL_CHAT), tools=TOOLS, chat_template=source, tokenize=False)


def write_run_config(run_dir, template: dict) -> None:
    """The resolved config beside `final/`, as `tuneforge train` writes it."""
    cfg = build_config({"template": template})
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


@pytest.fixture(scope="module")
def lora_artefact(tiny_dir, tokenizer, tmp_path_factory):
    final = random_artefact(tiny_dir, tmp_path_factory.mktemp("lora") / "final", {"name": "lora", "r": 4})
    tokenizer.save_pretrained(final)  # training saves the tokenizer beside the adapter
    return final


def fake_run(lora_artefact, run_dir, template: dict):
    shutil.copytree(lora_artefact, run_dir / "final")
    write_run_config(run_dir, template)
    return run_dir / "final"


@pytest.mark.parametrize("name", [spec.name for spec in BUILTIN_TEMPLATES])
def test_export_carries_the_template_the_run_was_trained_with(name, tiny_dir, lora_artefact, tmp_path):
    from transformers import AutoTokenizer

    final = fake_run(lora_artefact, tmp_path / "run", {"name": name})
    report = export(str(tiny_dir), final, tmp_path / "out", merge=False)
    assert report.chat_template == f"{name}, as trained" and f"chat template: {name}" in str(report)
    assert "chat_template" in json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
    exported = AutoTokenizer.from_pretrained(tmp_path / "out")
    ours = load_template(name, exported)
    for messages in PROMPTS:
        assert exported.apply_chat_template(hf(messages), tokenize=False, add_generation_prompt=True) == \
            prompt_text(ours, messages)


def test_export_carries_the_runs_default_system_prompt_and_own_jinja(tiny_dir, lora_artefact, tmp_path, tokenizer):
    from transformers import AutoTokenizer

    final = fake_run(lora_artefact, tmp_path / "run", {"name": "llama3", "system": "Answer in French."})
    assert "default system prompt" in export(str(tiny_dir), final, tmp_path / "out", merge=False).chat_template
    exported = AutoTokenizer.from_pretrained(tmp_path / "out")
    llama3 = load_template("llama3", exported)
    for messages in PROMPTS:
        trained = messages if messages[0].role == "system" else [Message("system", "Answer in French."), *messages]
        assert exported.apply_chat_template(hf(messages), tokenize=False, add_generation_prompt=True) == \
            prompt_text(llama3, trained)

    jinja = load_template("alpaca", tokenizer).chat_template
    final = fake_run(lora_artefact, tmp_path / "run2", {"name": "chatml", "jinja": jinja})
    report = export(str(tiny_dir), final, tmp_path / "out2", merge=False)
    assert report.chat_template == "the run's own Jinja, as trained"
    assert AutoTokenizer.from_pretrained(tmp_path / "out2").chat_template == jinja


def test_export_of_an_auto_run_keeps_the_tokenizers_template(tiny_dir, lora_artefact, tmp_path, tokenizer):
    from transformers import AutoTokenizer

    final = fake_run(lora_artefact, tmp_path / "run", {"name": "auto"})
    assert export(str(tiny_dir), final, tmp_path / "out", merge=False).chat_template == "the tokenizer's own"
    assert AutoTokenizer.from_pretrained(tmp_path / "out").chat_template == tokenizer.chat_template


def test_a_template_that_cannot_be_jinja_is_warned_about(tiny_dir, lora_artefact, tmp_path, tokenizer, monkeypatch):
    from transformers import AutoTokenizer

    from tuneforge.formatting import templates

    class PythonOnly:  # a template registered in Python, with no Jinja form
        name, description = "python_only", "renders like chatml, in Python only"

        def build(self, tok):
            return SimpleNamespace(name=self.name, fingerprint=self.name, chat_template=None,
                                   render=load_template("chatml", tok).render)

    monkeypatch.setitem(templates._REGISTRY, "python_only", PythonOnly())
    final = fake_run(lora_artefact, tmp_path / "run", {"name": "python_only"})
    with pytest.warns(UserWarning, match="'python_only', which cannot be written as a Jinja chat template"):
        report = export(str(tiny_dir), final, tmp_path / "out", merge=False)
    assert "warning" in report.chat_template
    assert AutoTokenizer.from_pretrained(tmp_path / "out").chat_template == tokenizer.chat_template


@pytest.fixture(scope="module")
def alpaca_run(tiny_dir, tmp_path_factory):
    """A LoRA run (by `tuneforge train`'s own code) taught one reply in the alpaca format, with a default
    system prompt."""
    from tuneforge.train.run import run_training

    root = tmp_path_factory.mktemp("alpaca-run")
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": REPLIES["alpha"]}]}) + "\n"
                            for q in QUESTIONS))
    cfg = build_config({"model": {"name_or_path": str(tiny_dir)}, "data": str(data),
                        "template": {"name": "alpaca", "system": "You are alpha."},
                        "method": {"name": "lora", "r": 8, "dropout": 0.0},
                        "train": {"output_dir": str(root / "run"), "max_steps": 40, "learning_rate": 1e-2,
                                  "batch_size": 3, "packing": False, "warmup_ratio": 0, "scheduler": "constant"}})
    return run_training(cfg).final_dir


def test_engine_formats_each_adapters_prompts_with_its_training_template(make_engine, alpaca_run, adapters,
                                                                         tokenizer):
    engine = make_engine({"alpaca": str(alpaca_run), "alpha": adapters["alpha"]})
    question = [Message("user", QUESTIONS[0])]
    alpaca = load_template("alpaca", tokenizer)
    expected = prompt_text(alpaca, [Message("system", "You are alpha."), *question])
    assert engine.encode_chat(question, model="alpaca") == tokenizer(expected, add_special_tokens=False).input_ids
    own = [Message("system", "Be brief."), *question]  # a conversation's own system prompt is kept
    assert engine.encode_chat(own, model="alpaca") == tokenizer(prompt_text(alpaca, own),
                                                                add_special_tokens=False).input_ids
    auto = prompt_text(load_template("auto", tokenizer), question)  # the run trained with auto, and the base
    for model in ("alpha", None):
        assert engine.encode_chat(question, model=model) == tokenizer(auto, add_special_tokens=False).input_ids
    prompt = engine.encode_chat(question, model="alpaca")
    assert engine.complete(prompt, SamplingParams(max_tokens=24), model="alpaca").text == REPLIES["alpha"]


def test_export_of_a_real_run_carries_its_template(tiny_dir, alpaca_run, tmp_path):
    from transformers import AutoTokenizer

    report = export(str(tiny_dir), alpaca_run, tmp_path / "out", merge=True, dtype="float32")
    assert report.max_abs_logit_diff < 1e-4
    exported = AutoTokenizer.from_pretrained(tmp_path / "out")
    messages = [Message("user", QUESTIONS[0])]
    assert exported.apply_chat_template(hf(messages), tokenize=False, add_generation_prompt=True) == \
        prompt_text(load_template("alpaca", exported), [Message("system", "You are alpha."), *messages])


def test_an_exported_adapter_is_served_with_the_template_it_carries(make_engine, tiny_dir, alpaca_run, tokenizer,
                                                                      tmp_path):
    """No run config beside an exported adapter directory: the engine reads the template export wrote."""
    export(str(tiny_dir), alpaca_run, tmp_path / "adapter", merge=False)
    engine = make_engine({"shipped": str(tmp_path / "adapter")})
    question = [Message("user", QUESTIONS[0])]
    expected = prompt_text(load_template("alpaca", tokenizer), [Message("system", "You are alpha."), *question])
    assert engine.encode_chat(question, model="shipped") == tokenizer(expected, add_special_tokens=False).input_ids


def test_serve_template_applies_only_where_no_training_template_was_recorded(make_engine, lora_artefact, tokenizer,
                                                                            tmp_path):
    """`serve --template chatml`: the base and an artefact that recorded no template use chatml; an
    artefact whose run recorded one (a built-in, or auto: the tokenizer's own) keeps it."""
    bare = tmp_path / "bare"  # adapter weights only: no run config, no tokenizer files
    bare.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(lora_artefact / name, bare / name)
    engine = make_engine({"alpaca": str(fake_run(lora_artefact, tmp_path / "alpaca", {"name": "alpaca"})),
                          "auto": str(fake_run(lora_artefact, tmp_path / "auto", {"name": "auto"})),
                          "bare": str(bare)}, template="chatml")
    question = [Message("user", QUESTIONS[0])]
    expected = {"alpaca": "alpaca", "auto": "auto", "bare": "chatml", None: "chatml"}
    for model, template in expected.items():
        text = prompt_text(load_template(template, tokenizer), question)
        assert engine.encode_chat(question, model=model) == tokenizer(text, add_special_tokens=False).input_ids, model
        assert engine.chat_template(model).name == template
    assert len({tuple(engine.encode_chat(question, model=m)) for m in expected}) == 3  # three different formats
