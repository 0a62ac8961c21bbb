"""Prefix, prompt and P-tuning adapters served by the engine: greedy replies are exactly what peft's own
`PeftModel` forward pass picks, alone and batched with base and LoRA rows; through the server and the CLI too."""

from __future__ import annotations

import queue

import pytest
import torch
from tests.serve.conftest import QUESTIONS, running_server
from tests.serve.test_engine import random_artefact

from tuneforge.serve.engine import Completion, ContextTooLong
from tuneforge.serve.sampling import SamplingParams
from tuneforge.types import Message

VIRTUAL = {"prompt": {"name": "prompt", "num_virtual_tokens": 5},
           "ptuning": {"name": "ptuning", "num_virtual_tokens": 4, "encoder_hidden_size": 16},
           "prefix": {"name": "prefix", "num_virtual_tokens": 3}}
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def tiny_dir(tiny_dir, tmp_path_factory):
    """The package's tiny base with sharper attention (query and key weights scaled up): a random model's
    near-uniform attention hardly depends on positions, so a position error would pass unnoticed."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8)
            layer.self_attn.k_proj.weight.mul_(8)
    out = tmp_path_factory.mktemp("sharp") / "base"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def artefacts(tiny_dir, tmp_path_factory) -> dict[str, str]:
    """One artefact per virtual-token method and two LoRAs (one on the embeddings too), weights randomised
    (as if trained) so that none acts as the base."""
    root = tmp_path_factory.mktemp("virtual")
    settings = {**VIRTUAL, "lora": {"name": "lora", "r": 4},
                "lora_embed": {"name": "lora", "r": 4, "target_modules": ["embed_tokens", "q_proj"]}}
    with torch.random.fork_rng(devices=[]):  # the methods' own initialisation: the same artefacts every run
        torch.manual_seed(0)
        return {name: str(random_artefact(tiny_dir, root / name, s)) for name, s in settings.items()}


def greedy(model, prompt: list[int], max_tokens: int, eos_id: int) -> list[int]:
    """Greedy token ids, the whole sequence run through `model` afresh for each token (no KV cache)."""
    ids = list(prompt)
    while len(ids) - len(prompt) < max_tokens and (len(ids) == len(prompt) or ids[-1] != eos_id):
        batch = torch.tensor([ids])
        with torch.no_grad():
            logits = model(input_ids=batch, attention_mask=torch.ones_like(batch), use_cache=False).logits
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt):]


@pytest.fixture(scope="module")
def reference(tiny_dir, tokenizer, artefacts):
    """Greedy token ids of the `PeftModel` (or the base), (adapter, prompt) -> ids. Each token comes from a
    full forward pass rather than from `PeftModel.generate`: peft 0.21's generate hands virtual tokens over
    as `past_key_values`, which transformers 5.24 renamed to `cache` and ignores beside it, so since then
    its replies no longer match its own forward pass (up to transformers 5.23 they matched this exactly)."""
    from tuneforge.methods.artefact import method_of
    from tuneforge.models import load_model

    models = {}

    def generate(adapter: str | None, prompt: list[int], max_tokens: int = MAX_TOKENS) -> list[int]:
        if adapter not in models:
            base, _ = load_model(str(tiny_dir))
            path = artefacts.get(adapter)
            models[adapter] = (method_of(path).load(base, path) if path else base).eval()
        return greedy(models[adapter], prompt, max_tokens, tokenizer.eos_token_id)

    return generate


def chat(engine, question: str, model: str | None = None) -> list[int]:
    return engine.encode_chat([Message("user", question)], model=model)


def text_of(engine, ids: list[int]) -> str:
    # The engine never returns half a character: a reply cut by max_tokens ends before it.
    return engine.tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd")


@pytest.mark.parametrize("method", VIRTUAL)
def test_each_method_alone_generates_exactly_what_peft_generates(make_engine, artefacts, reference, tiny_dir, method):
    from tuneforge.methods import get_method
    from tuneforge.models import load_model
    from tuneforge.serve.engine import Engine

    engine = make_engine({method: artefacts[method]})
    prompt = chat(engine, QUESTIONS[0])
    expected = reference(method, prompt)
    assert expected != reference(None, prompt)  # the adapter changes the reply, so a wrong prefill would show
    done = engine.complete(prompt, SamplingParams(max_tokens=MAX_TOKENS), model=method)
    assert done.text == text_of(engine, expected)
    assert done.completion_tokens == len(expected) and done.prompt_tokens == len(prompt)
    # Evaluation hands the engine the adapted PeftModel itself as its model: served the same way.
    base, tokenizer = load_model(str(tiny_dir))
    with Engine(get_method(method).load(base, artefacts[method]), tokenizer) as adapted:
        assert adapted.complete(prompt, SamplingParams(max_tokens=MAX_TOKENS)).text == done.text


def test_virtual_rows_batch_with_base_and_lora_rows_and_join_running_batches(make_engine, artefacts, reference):
    engine = make_engine({name: path for name, path in artefacts.items() if name != "lora_embed"}, max_batch_size=3)
    routes = engine.models.routes
    assert {route.group for route in routes.values()} == {routes["tiny"].group}  # all rows may share a batch
    # Different prompt lengths (left padding) and reply lengths: rows leave early and waiting rows join the
    # running batch, so prefix keys/values and virtual embeddings go through every cache reshaping.
    jobs = [(model, QUESTIONS[i % 3], 4 + 3 * i)
            for i, model in enumerate(["prefix", "tiny", "prompt", "lora", "ptuning", "prefix", "prompt", "tiny",
                                       "ptuning", "lora"])]
    done: queue.Queue = queue.Queue()
    for k, (model, question, n) in enumerate(jobs):
        engine.submit(chat(engine, question), SamplingParams(max_tokens=n), model=model,
                      sink=lambda e, k=k: isinstance(e, Completion) and done.put((k, e)))
    got = dict(done.get(timeout=120) for _ in jobs)
    for k, (model, question, n) in enumerate(jobs):
        expected = reference(None if model == "tiny" else model, chat(engine, question), n)
        assert (got[k].text, got[k].completion_tokens) == (text_of(engine, expected), len(expected)), model


def test_prompt_rows_batch_apart_from_a_lora_on_the_embeddings(make_engine, artefacts, reference):
    engine = make_engine({"lora_embed": artefacts["lora_embed"], "prompt": artefacts["prompt"]})
    routes = engine.models.routes
    # Prompt rows are fed embeddings, which would bypass that LoRA for its rows in a shared batch.
    assert routes["prompt"].group != routes["lora_embed"].group == routes["tiny"].group
    prompt = chat(engine, QUESTIONS[0])
    done: queue.Queue = queue.Queue()
    for model in ["lora_embed", "prompt", "tiny", "prompt"]:
        engine.submit(prompt, SamplingParams(max_tokens=MAX_TOKENS), model=model,
                      sink=lambda e, m=model: isinstance(e, Completion) and done.put((m, e.text)))
    for _ in range(4):
        model, text = done.get(timeout=60)
        assert text == text_of(engine, reference(None if model == "tiny" else model, prompt)), model


def test_virtual_tokens_count_against_the_context(make_engine, artefacts):
    engine = make_engine({"prompt": artefacts["prompt"]})
    prompt = chat(engine, QUESTIONS[0])
    room = engine.context_length - len(prompt)
    engine.check(prompt, SamplingParams(max_tokens=room))  # the base has room for it
    with pytest.raises(ContextTooLong, match="5 virtual tokens"):
        engine.check(prompt, SamplingParams(max_tokens=room), "prompt")


def test_server_lists_and_routes_to_a_prompt_tuning_adapter(make_engine, artefacts, reference):
    openai = pytest.importorskip("openai", reason="the serve extra is needed: pip install 'tuneforge[serve]'")
    engine = make_engine({"soft": artefacts["prompt"]})
    expected = reference("prompt", chat(engine, QUESTIONS[1]))
    with running_server(engine) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data] == ["tiny", "soft"]
        out = client.chat.completions.create(model="soft", messages=[{"role": "user", "content": QUESTIONS[1]}],
                                             temperature=0, max_tokens=MAX_TOKENS)
        # Without max_tokens the reply may use the rest of the context, after the virtual tokens.
        rest = client.chat.completions.create(model="soft", messages=[{"role": "user", "content": QUESTIONS[1]}],
                                              temperature=0, stop=[" "])
    assert out.model == "soft"
    assert out.choices[0].message.content == text_of(engine, expected)
    assert rest.choices[0].finish_reason in ("stop", "length")


def test_chat_cli_answers_through_a_prefix_adapter(tiny_dir, artefacts, reference, make_engine):
    from typer.testing import CliRunner

    from tuneforge.cli import app

    engine = make_engine()
    expected = text_of(engine, reference("prefix", chat(engine, QUESTIONS[2])))
    result = CliRunner().invoke(app, ["chat", "--model", str(tiny_dir), "--adapter", artefacts["prefix"],
                                      "--prompt", QUESTIONS[2], "--max-new-tokens", str(MAX_TOKENS)])
    assert result.exit_code == 0, result.output
    assert f"{expected}\n" in result.output
