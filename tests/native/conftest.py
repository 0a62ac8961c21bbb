import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine every small op would wait
    for a second core (as in tests/methods, where these tests lived)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def saved_bytes(fn) -> int:
    """Bytes of the distinct storages the autograd graph keeps for the backward pass while `fn` runs."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


def llama_runs(fuse, **inputs):
    """A tiny 2-layer Llama's logits, parameter gradients and bytes kept for backward on `inputs`, eager
    and after `fuse(model)` (which returns how many modules it rerouted, also returned)."""
    from tuneforge.models.tiny import tiny_llama

    runs, fused_count = [], None
    for fused in (False, True):
        model = tiny_llama(layers=2)
        if fused:
            fused_count = fuse(model)
        kept = saved_bytes(lambda: model(**inputs).logits)  # noqa: B023 (saved_bytes calls it at once)
        logits = model(**inputs).logits
        logits.square().mean().backward()
        runs.append((logits.detach(), {n: p.grad for n, p in model.named_parameters()}, kept))
    return runs, fused_count


@pytest.fixture
def eager_and_fused():
    """`eager_and_fused(fuse, **inputs)`: `llama_runs`, after checking that logits and gradients agree."""
    def run(fuse, **inputs):
        ((l0, g0, kept0), (l1, g1, kept1)), count = llama_runs(fuse, **inputs)
        assert torch.allclose(l1, l0, atol=1e-5)
        assert all(torch.allclose(g1[n], g0[n], atol=1e-5) for n in g0)
        return kept0 - kept1, count
    return run
