"""The generation engine on a tiny random Llama: continuous batching gives exactly the replies of
one-by-one `model.generate`, per-request sampling and seeds, stop strings, streaming, cancellation."""

from __future__ import annotations

import queue

import pytest
import torch

from tuneforge.serve.detokenize import TextStream
from tuneforge.serve.engine import Completion, ContextTooLong, Delta, EngineBusy, EngineClosed, UnknownModel
from tuneforge.serve.sampling import SamplingParams, make_generator, next_tokens


@pytest.fixture
def engine(make_engine):
    return make_engine(max_batch_size=4)


def prompts_of(engine, n: int) -> list[list[int]]:
    # Different lengths, so that rows are left-padded and join a batch at different offsets.
    return [engine.encode_text(f"story {i}: " + "once upon a time " * (i + 1)) for i in range(n)]


def test_continuous_batching_matches_one_by_one_generate(engine):
    model = engine.models.base
    prompts = prompts_of(engine, 7)
    lengths = [5 + 3 * i for i in range(7)]  # rows finish at different steps; waiting rows join mid-batch
    expected = []
    for prompt, n in zip(prompts, lengths):
        ids = torch.tensor([prompt])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                             pad_token_id=engine.pad_id)
        expected.append(out[0, len(prompt):].tolist())
    done: queue.Queue = queue.Queue()
    for i, (prompt, n) in enumerate(zip(prompts, lengths)):
        engine.submit(prompt, SamplingParams(max_tokens=n),
                      lambda e, i=i: isinstance(e, Completion) and done.put((i, e)))
    got = dict(done.get(timeout=60) for _ in prompts)
    for i, ids in enumerate(expected):
        assert got[i].text == engine.tokenizer.decode(ids, skip_special_tokens=True)
        assert got[i].completion_tokens == len(ids)


def test_seeded_sampling_repeats_whatever_shares_the_batch(engine):
    prompt = prompts_of(engine, 1)[0]
    params = SamplingParams(max_tokens=12, temperature=1.0, top_p=0.9, top_k=50, seed=3)
    alone = engine.complete(prompt, params).text
    crowd: queue.Queue = queue.Queue()
    for i, other in enumerate(prompts_of(engine, 3)):
        engine.submit(other, SamplingParams(max_tokens=12, temperature=0.7, seed=i), lambda e: None)
    engine.submit(prompt, params, lambda e: isinstance(e, Completion) and crowd.put(e))
    assert crowd.get(timeout=60).text == alone
    assert engine.complete(prompt, SamplingParams(max_tokens=12, temperature=1.0, seed=4)).text != alone


def test_a_prompt_asked_for_several_times_is_prefilled_once(make_engine):
    engine = make_engine(max_batch_size=4, batch_window_s=0.5)
    p, q = prompts_of(engine, 2)
    sampled = [SamplingParams(max_tokens=10, temperature=1.0, seed=s) for s in (1, 2, 3)]
    params = [*sampled, SamplingParams(max_tokens=10)]
    alone = [engine.complete(prompt, sp).text for prompt, sp in zip([p, p, q, p], params)]
    batch_rows = []
    forward = engine._forward
    engine._forward = lambda routes, inputs, *a: batch_rows.append(inputs.shape[0]) or forward(routes, inputs, *a)
    together = engine.complete_all([p, p, q, p], params)
    assert [c.text for c in together] == alone  # the copies' own seeds: three different samples of p
    assert batch_rows[0] == 2 and len(set(alone[:2] + alone[3:])) == 3  # p and q once each, then 4-row decode steps


def test_streamed_pieces_add_up_and_stop_strings_cut(engine):
    prompt = prompts_of(engine, 1)[0]
    events = list(engine.stream(prompt, SamplingParams(max_tokens=20, ignore_eos=True)))
    pieces = [e.text for e in events if isinstance(e, Delta)]
    done = events[-1]
    assert isinstance(done, Completion) and len(pieces) > 3 and "".join(pieces) == done.text
    stop = done.text[len(done.text) // 2:][:3]
    cut = engine.complete(prompt, SamplingParams(max_tokens=20, stop=(stop,), ignore_eos=True))
    assert cut.text == done.text[:done.text.index(stop)] and cut.finish_reason == "stop"


def test_cancel_and_errors(make_engine):
    engine = make_engine(max_batch_size=1, max_waiting=1)
    prompt = prompts_of(engine, 1)[0]
    events: queue.Queue = queue.Queue()
    handle = engine.submit(prompt, SamplingParams(max_tokens=1000, ignore_eos=True), events.put)
    assert isinstance(events.get(timeout=30), Delta)
    engine.submit(prompt, SamplingParams(max_tokens=2), lambda e: None)  # waits: the batch holds one row
    with pytest.raises(EngineBusy):
        engine.submit(prompt, SamplingParams(max_tokens=2), lambda e: None)
    handle.cancel()
    while not isinstance(last := events.get(timeout=30), Completion):
        pass
    assert last.finish_reason == "cancelled" and last.completion_tokens < 1000
    with pytest.raises(UnknownModel):
        engine.check(prompt, SamplingParams(), "nope")
    with pytest.raises(ContextTooLong):
        engine.check(prompt, SamplingParams(max_tokens=engine.context_length))
    engine.close()
    with pytest.raises(EngineClosed):
        engine.submit(prompt, SamplingParams(), lambda e: None)


def test_a_failing_batch_fails_its_requests_not_the_engine(engine, monkeypatch):
    prompt = prompts_of(engine, 1)[0]
    real = engine._forward
    calls = {"n": 0}

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("out of memory")
        return real(*args)

    monkeypatch.setattr(engine, "_forward", flaky)
    params = SamplingParams(max_tokens=5, ignore_eos=True)
    failed = engine.complete(prompt, params)
    assert failed.finish_reason == "error" and "out of memory" in failed.error
    assert engine.complete(prompt, params).finish_reason == "length"


def test_sampling_filters_and_repetition_penalty_match_transformers():
    from transformers.generation.logits_process import (
        RepetitionPenaltyLogitsProcessor,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    from tuneforge.serve.sampling import _filter_top_k_top_p, _penalise_repeats

    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))  # (B, V)
    for k, p in [(5, 1.0), (0, 0.8), (10, 0.5)]:
        ours = _filter_top_k_top_p(logits.clone(), torch.tensor([k] * 3), torch.tensor([p] * 3))
        ref = logits.clone()
        if k:
            ref = TopKLogitsWarper(k)(None, ref)
        if p < 1:
            ref = TopPLogitsWarper(p)(None, ref)
        assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    seen = torch.tensor([[1, 2, 2, 7]] * 3)  # (B, T)
    ref = RepetitionPenaltyLogitsProcessor(1.3)(seen, logits.clone())
    ours = logits.clone()
    _penalise_repeats(ours, [SamplingParams(repetition_penalty=1.3)] * 3, list(seen))
    torch.testing.assert_close(ours, ref)
    greedy = next_tokens(logits, [SamplingParams(), SamplingParams(temperature=1, top_k=1)] * 1 + [SamplingParams()],
                         [torch.Generator()] * 3, [None] * 3)
    assert torch.equal(greedy, logits.argmax(-1))  # top_k=1 sampling is greedy


def test_sampled_rows_follow_their_distribution_and_their_own_seeds():
    probs = torch.tensor([0.5, 0.0, 0.3, 0.0, 0.2])  # zero-probability tokens must never be drawn
    logits = probs.clamp(min=1e-45).log().expand(4, 5).contiguous()  # (B, V)
    params = [SamplingParams(temperature=1.0, seed=i) for i in range(4)]
    generators = [make_generator(i) for i in range(4)]
    draws = torch.stack([next_tokens(logits, params, generators, [None] * 4) for _ in range(2000)])  # (N, B)
    share = torch.bincount(draws.flatten(), minlength=5).float() / draws.numel()
    assert share[1] == 0 and share[3] == 0
    torch.testing.assert_close(share, probs, atol=0.02, rtol=0)
    # A row's draws depend on its own generator only, not on what else shares the batch.
    generator = make_generator(0)
    alone = [next_tokens(logits[:1], params[:1], [generator], [None]) for _ in range(50)]
    assert torch.equal(torch.cat(alone), draws[:50, 0])


def test_batched_draws_are_torch_multinomials_draws():
    """`draw` picks, row by row, the token torch.multinomial picks from the same generator state, and
    leaves each generator where multinomial would (so seeded replies stay what they were)."""
    from tuneforge.serve.sampling import draw

    probs = torch.randn(6, 49152, generator=torch.Generator().manual_seed(0)).mul(3).softmax(dim=-1)
    probs[2, 100:] = 0  # a row with most of its vocabulary ruled out
    probs[2] /= probs[2].sum()
    ours, theirs = [make_generator(s) for s in range(6)], [make_generator(s) for s in range(6)]
    for _ in range(20):
        expected = torch.stack([torch.multinomial(p, 1, generator=g)[0] for p, g in zip(probs, theirs)])
        assert torch.equal(draw(probs, ours), expected)
    with pytest.raises(ValueError, match="nan"):
        draw(torch.full((1, 4), float("nan")), [make_generator(0)])


def test_text_stream_holds_back_partial_characters_and_stop_strings(tokenizer):
    text = "Hello 世界, naïve café 🙂 done. STOP here"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    stream = TextStream(tokenizer)
    pieces = [stream.push(i) for i in ids] + [stream.finish()]
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)
    stream = TextStream(tokenizer, stop=("STOP", "never"))
    pieces = [stream.push(i) for i in ids]
    assert "".join(pieces) == "Hello 世界, naïve café 🙂 done. " and stream.stopped and stream.finish() == ""
    stream = TextStream(tokenizer, stop=("done. X",))  # a stop string's start, never completed
    assert "".join([stream.push(i) for i in ids] + [stream.finish()]) == text


def random_artefact(tiny_dir, out, settings: dict):
    """An artefact of a method with random (non-identity) weights, as if trained."""
    from tuneforge.methods import get_method, method_config
    from tuneforge.models import load_model

    model, _ = load_model(str(tiny_dir))
    cfg = method_config(settings)
    adapted = get_method(cfg.name).apply(model, cfg)
    with torch.no_grad():
        for _, param in adapted.named_parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
    get_method(cfg.name).save(adapted, out)
    return out


@pytest.mark.parametrize("settings", [{"name": "lora", "r": 4, "dora": True}, {"name": "ia3"},
                                      {"name": "adapter", "bottleneck": 8}], ids=lambda s: s["name"] + (
    "-dora" if s.get("dora") else ""))
def test_adapters_that_cannot_mix_are_grouped_and_each_answers_as_alone(make_engine, adapters, tiny_dir,
                                                                        tmp_path, settings):
    from tests.serve.conftest import QUESTIONS, REPLIES

    from tuneforge.methods.artefact import method_of
    from tuneforge.models import load_model
    from tuneforge.types import Message

    other = random_artefact(tiny_dir, tmp_path / "other", settings)
    engine = make_engine({"alpha": adapters["alpha"], "other": str(other)})
    routes = engine.models.routes
    assert routes["other"].group not in {routes["alpha"].group, routes["tiny"].group}
    # LoRA rows mix with base rows unless a DoRA adapter shares their PeftModel (peft cannot mix DoRA).
    assert (routes["alpha"].group == routes["tiny"].group) == (not settings.get("dora"))
    prompt = engine.encode_chat([Message("user", QUESTIONS[0])])
    base, _ = load_model(str(tiny_dir))
    alone = method_of(other).load(base, other)
    ids = torch.tensor([prompt])
    ref = alone.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False,
                         pad_token_id=engine.pad_id)[0, len(prompt):]
    done: queue.Queue = queue.Queue()
    for name in ["alpha", "other", "tiny", "alpha", "other"]:  # arriving together, decoded group by group
        engine.submit(prompt, SamplingParams(max_tokens=20), model=name,
                      sink=lambda e, n=name: isinstance(e, Completion) and done.put((n, e.text)))
    got = [done.get(timeout=60) for _ in range(5)]
    assert [t for n, t in got if n == "other"] == [engine.tokenizer.decode(ref, skip_special_tokens=True)] * 2
    assert [t for n, t in got if n == "alpha"] == [REPLIES["alpha"]] * 2


def test_lora_adapters_and_the_base_mix_in_one_batch(make_engine, adapters):
    from tests.serve.conftest import QUESTIONS, REPLIES

    from tuneforge.types import Message

    engine = make_engine(adapters)
    routes = engine.models.routes
    assert routes["alpha"].mixed and routes["alpha"].group == routes["beta"].group == routes["tiny"].group
    prompt = engine.encode_chat([Message("user", QUESTIONS[0])])
    base_alone = engine.complete(prompt, SamplingParams(max_tokens=20), model="tiny").text
    done: queue.Queue = queue.Queue()
    for name in ["alpha", "beta", "tiny", "beta", "alpha"]:
        engine.submit(prompt, SamplingParams(max_tokens=20), model=name,
                      sink=lambda e, n=name: isinstance(e, Completion) and done.put((n, e.text)))
    for _ in range(5):
        name, text = done.get(timeout=60)
        assert text == (base_alone if name == "tiny" else REPLIES[name])


def test_served_linear_layers_run_through_onednn(engine, monkeypatch, onednn_on):
    """A loaded engine's float32 CPU linear layers take oneDNN's products (the same numbers, faster)
    where MKL keeps its generic kernels."""
    from torch import nn

    from tuneforge.native import onednn_mm

    linears = [m for m in engine.models.base.modules() if type(m) is nn.Linear]
    assert linears and all("forward" in vars(m) for m in linears)
    if not onednn_on:
        return
    calls = []
    real = onednn_mm._inner_product
    monkeypatch.setattr(onednn_mm, "_inner_product", lambda *a: calls.append(1) or real(*a))
    engine.complete(prompts_of(engine, 1)[0], SamplingParams(max_tokens=2))
    assert calls
