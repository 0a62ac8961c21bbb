"""GGUF export: f16 / q8_0 files that transformers reloads with the merged model's logits and the same
token ids, an Ollama Modelfile whose Go template renders our chat templates' prompts exactly, and the
`tuneforge export --gguf` command end to end.

Reloading a GGUF with the real 49k-token vocabulary costs seconds (gguf-py parses every string), so
each file is written and checked once per module."""

from __future__ import annotations

import re
import shlex
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from tests.serve.test_engine import random_artefact
from typer.testing import CliRunner

from tuneforge.cli import app
from tuneforge.errors import TuneforgeError
from tuneforge.export.gguf import GGUFReport, export_gguf, parse_gguf_types
from tuneforge.export.ollama import ollama_template, write_modelfile
from tuneforge.formatting import BUILTIN_TEMPLATES, JinjaTemplate, load_template, prompt_text
from tuneforge.types import Message

F16_RELATIVE, Q8_0_RELATIVE = 1e-2, 5e-2
"""Bounds on max |logit difference| / max |logit| vs the float32 merged model (measured: ~5e-4, ~1e-2)."""

CONVERSATIONS = [
    [Message("user", "What is 2+2?")],
    [Message("user", "Hi"), Message("assistant", "Hello!"), Message("user", "Bye")],
    [Message("system", "Answer briefly."), Message("user", "What is 2+2?"), Message("assistant", "4."),
     Message("user", "And 3+3?")],
]


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory) -> GGUFReport:
    return export_gguf(tiny_model_dir, ["f16", "q8_0"], out_dir=tmp_path_factory.mktemp("gguf"))


def test_f16_and_q8_0_reload_through_transformers_with_the_merged_models_logits(exported):
    f16, q8_0 = exported.checks
    assert f16.path.name == "model-f16.gguf" and q8_0.path.name == "model-q8_0.gguf"
    assert f16.relative_logit_diff < F16_RELATIVE
    assert q8_0.relative_logit_diff < Q8_0_RELATIVE
    assert f16.max_abs_logit_diff < q8_0.max_abs_logit_diff  # q8_0 is really quantised
    assert q8_0.path.stat().st_size < 0.7 * f16.path.stat().st_size


def test_reloaded_tokenizer_gives_the_same_ids(exported):
    assert all(check.tokenizer_matches for check in exported.checks)


def test_modelfile_uses_the_models_own_template_and_system_prompt(exported):
    text = exported.modelfile.read_text()
    assert text.splitlines()[1] == "FROM ./model-f16.gguf"
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and "chatml" in exported.template_source


def test_q_and_k_permutation_is_what_transformers_undoes():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    from tuneforge.export.gguf import _permute

    w = np.arange(24 * 5, dtype=np.float32).reshape(24, 5)  # 3 heads of 8 rows
    permuted = _permute(w, 3)
    assert not np.array_equal(permuted, w)
    np.testing.assert_array_equal(LlamaTensorProcessor()._reverse_permute_weights(permuted, 3, 3), w)


def test_pre_tokenizer_is_named_as_llama_cpp_names_it(tiny_model_dir):
    """llama.cpp refuses to load a file whose `tokenizer.ggml.pre` it does not know."""
    import json

    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    from tuneforge.export.gguf import _pre_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def name() -> str:
        return _pre_tokenizer(json.loads(tokenizer.backend_tokenizer.to_str()), tiny_model_dir)

    assert name() == "gpt-2"  # not "gpt2", which is the tokenizer model's name
    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    assert name() == "smollm"


# --- the Modelfile's Go template ---------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _go_tokens(template: str) -> list[tuple[str, str]]:
    out, pos, trim_next = [], 0, False
    for m in _ACTION.finditer(template):
        text = template[pos:m.start()]
        text = text.lstrip() if trim_next else text
        out += [("text", text.rstrip() if m[1] else text), ("action", m[2])]
        trim_next, pos = bool(m[3]), m.end()
    return [*out, ("text", template[pos:].lstrip() if trim_next else template[pos:])]


def _go_parse(tokens, i=0):
    nodes = []
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "text":
            nodes.append(("text", value))
        elif value == "end" or value.startswith("else"):
            return nodes, i
        elif value.startswith("if "):
            branches, cond = [], value[3:]
            while True:
                body, i = _go_parse(tokens, i + 1)
                branches.append((cond, body))
                if tokens[i][1] == "end":
                    break
                cond = tokens[i][1][len("else if "):] if tokens[i][1].startswith("else if ") else None
            nodes.append(("if", branches))
        elif value == "range $i, $_ := .Messages":
            body, i = _go_parse(tokens, i + 1)
            nodes.append(("range", body))
        elif m := re.fullmatch(r"(\$\w+)\s*:?=\s*(.+)", value):
            nodes.append(("assign", m[1], m[2]))
        else:
            nodes.append(("print", value))
        i += 1
    return nodes, i


def _go_eval(expr: str, dot: dict, env: dict):
    def value(word: str):
        if word.startswith("."):
            return dot[word[1:].lower()]
        return env[word] if word.startswith("$") else {"true": True, "false": False}.get(word, word)

    words = shlex.split(expr)
    if words[0] == "eq":
        return value(words[1]) == value(words[2])
    (word,) = words
    return value(word)


def _go_run(nodes, dot: dict, env: dict, out: list[str]) -> None:
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "print":
            out.append(str(_go_eval(node[1], dot, env)))
        elif node[0] == "assign":
            env[node[1]] = _go_eval(node[2], dot, env)
        elif node[0] == "if":
            body = next((b for cond, b in node[1] if cond is None or _go_eval(cond, dot, env)), [])
            _go_run(body, dot, env, out)
        else:  # range over .Messages
            for i, message in enumerate(dot["messages"]):
                env["$i"] = i
                _go_run(node[1], message, env, out)


def render_go(template: str, messages: list[Message], system: str | None) -> str:
    """What Ollama sends the model: the Modelfile's SYSTEM goes first when the conversation has no
    system message, then the template runs over `.Messages` (the few Go constructs we emit)."""
    if system is not None and messages[0].role != "system":
        messages = [Message("system", system), *messages]
    nodes, _ = _go_parse(_go_tokens(template))
    out: list[str] = []
    _go_run(nodes, {"messages": [{"role": m.role, "content": m.content} for m in messages]}, {}, out)
    return "".join(out)


@pytest.mark.parametrize("spec", BUILTIN_TEMPLATES, ids=lambda s: s.name)
@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=["one-turn", "two-turns", "with-system"])
def test_go_template_renders_the_builtins_prompt(spec, conversation):
    tokenizer = SimpleNamespace(bos_token="<s>", eos_token="</s>")
    template = spec.build(tokenizer)
    expected = prompt_text(template, conversation)
    ours = ollama_template(template, tokenizer, runtime_adds_bos=False)
    assert render_go(ours.template, conversation, ours.system) == expected
    # Where the runtime adds BOS itself (add_bos_token), the template must not write it again.
    with_bos = ollama_template(template, tokenizer, runtime_adds_bos=True)
    runtime_bos = "<s>" if expected.startswith("<s>") else ""
    assert runtime_bos + render_go(with_bos.template, conversation, with_bos.system) == expected


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=["one-turn", "two-turns", "with-system"])
def test_go_template_renders_smollm2s_own_jinja_template(conversation, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    template = load_template("auto", tokenizer)
    ours = ollama_template(template, tokenizer, runtime_adds_bos=False)
    assert ours.system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert render_go(ours.template, conversation, ours.system) == prompt_text(template, conversation)
    overridden = ollama_template(template, tokenizer, runtime_adds_bos=False, system="Be terse.")
    assert render_go(overridden.template, conversation, overridden.system) == prompt_text(
        template, conversation if conversation[0].role == "system" else [Message("system", "Be terse."),
                                                                          *conversation])


def test_an_untranslatable_jinja_template_gives_a_modelfile_without_template_and_a_warning(tiny_model_dir,
                                                                                        tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    source = ("{% for m in messages %}[{{ m['role'] | upper }}] {{ m['content'] }}\n{% endfor %}"
              "{% if add_generation_prompt %}[ASSISTANT] {% endif %}")
    assert ollama_template(JinjaTemplate("mine", source, tokenizer), tokenizer, runtime_adds_bos=False) is None
    modelfile = write_modelfile(tmp_path / "Modelfile", "model-f16.gguf", None)
    assert modelfile.read_text().splitlines()[1:] == ["FROM ./model-f16.gguf"]
    assert "has no TEMPLATE" in str(GGUFReport((), modelfile, None))


# --- the command -------------------------------------------------------------------------------

def _invoke(*args: str):
    return CliRunner().invoke(app, ["export", *args])


@pytest.fixture(scope="module")
def tied_base(tiny_model_dir, tmp_path_factory):
    """The tiny model with tied input / output embeddings, as SmolLM2 has them."""
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.tie_word_embeddings = True
    out = tmp_path_factory.mktemp("tied")
    LlamaForCausalLM(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def _trained_size(artefact):
    """random_artefact's noise makes merged weights ~100x the base's: a model so ill-conditioned that
    rounding to f16 alone moves its logits by ~20%. Scaled down, the update is the size of a trained one."""
    from safetensors.torch import load_file, save_file

    path = artefact / "adapter_model.safetensors"
    save_file({name: tensor * 0.1 for name, tensor in load_file(path).items()}, path)
    return artefact


def test_export_gguf_command_end_to_end_on_a_lora_run(tied_base, tmp_path):
    run_dir = tmp_path / "run"
    artefact = _trained_size(random_artefact(tied_base, run_dir / "final", {"name": "lora", "r": 4}))
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"template": {"name": "alpaca", "system": "Be terse."}}))
    out = tmp_path / "export"
    result = _invoke("--model", str(tied_base), "--adapter", str(artefact), "--out", str(out), "--merge",
                     "--dtype", "float32", "--gguf", "q8_0")
    assert result.exit_code == 0, result.output
    assert "exported merged model (float32)" in result.output and "tokenizer: same ids" in result.output
    relative = float(re.search(r"model-q8_0\.gguf: .*\(([\d.]+)% of the largest logit\)", result.output)[1])
    assert relative / 100 < Q8_0_RELATIVE
    # Tied embeddings: no output.weight tensor (a GGUF string is its uint64 length, then the bytes).
    assert b"\x0d\x00\x00\x00\x00\x00\x00\x00output.weight" not in (out / "gguf" / "model-q8_0.gguf").read_bytes()
    modelfile = (out / "gguf" / "Modelfile").read_text()
    assert "FROM ./model-q8_0.gguf" in modelfile and "### Instruction:" in modelfile
    assert 'SYSTEM """Be terse."""' in modelfile  # the run's template.system, over alpaca's default


def test_gguf_needs_a_merged_llama_and_a_known_type(tiny_model_dir, tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    lora = random_artefact(tiny_model_dir, tmp_path / "lora", {"name": "lora", "r": 4})
    bottleneck = random_artefact(tiny_model_dir, tmp_path / "bottleneck", {"name": "adapter", "bottleneck": 8})
    base = ["--model", str(tiny_model_dir), "--out", str(tmp_path / "out")]
    result = _invoke(*base, "--adapter", str(lora), "--gguf", "f16")
    assert isinstance(result.exception, TuneforgeError) and "add --merge" in str(result.exception)
    result = _invoke(*base, "--adapter", str(bottleneck), "--merge", "--gguf", "f16")
    assert isinstance(result.exception, TuneforgeError) and "without --gguf" in str(result.exception)
    assert str(bottleneck) in str(result.exception) and not (tmp_path / "out").exists()
    qwen = tmp_path / "qwen"  # a full fine-tune of another architecture
    Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(qwen)
    result = _invoke(*base, "--adapter", str(qwen), "--gguf", "f16")
    assert "Llama-architecture" in str(result.exception) and not (tmp_path / "out").exists()
    with pytest.raises(TuneforgeError, match="unknown GGUF type 'q4_k'"):
        parse_gguf_types(["f16,q4_k"])
    assert parse_gguf_types(["q8_0,f16", "f16"]) == ["q8_0", "f16"]


def test_the_gguf_carries_the_template_the_modelfile_renders(tiny_model_dir, tmp_path):
    """llama.cpp's own chat and server format prompts with the GGUF's template: it must be the one asked for."""
    from transformers import AutoTokenizer

    from tuneforge.config import TemplateConfig
    from tuneforge.export.merge import use_template

    chosen = TemplateConfig(name="alpaca", system="Be terse.")
    report = export_gguf(tiny_model_dir, ["q8_0"], template=chosen, out_dir=tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    use_template(tokenizer, chosen)
    # A GGUF string is its uint64 length, then the bytes (re-reading the file's vocabulary takes seconds).
    source = tokenizer.chat_template.encode()
    assert len(source).to_bytes(8, "little") + source in report.checks[0].path.read_bytes()
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered == prompt_text(load_template(chosen, AutoTokenizer.from_pretrained(tiny_model_dir)),
                                   [Message("system", "Be terse."), Message("user", "Hi")])
    assert "### Instruction:" in rendered and "### Instruction:" in report.modelfile.read_text()
