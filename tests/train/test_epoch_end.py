from tests.train.test_loop import _cfg, _data, _run

from tuneforge.models import tiny_llama
from tuneforge.train.batching import count_labels


def test_an_epochs_leftover_micro_batches_make_a_last_smaller_step(tmp_path, one_thread):
    """3 micro-batches, 2 per step: 2 steps per epoch, the last of one micro-batch; every sample trained
    (it used to be 1 step, the third micro-batch left out of every epoch without a word)."""
    data = _data(3)
    result = _run(tiny_llama(vocab_size=64), data, _cfg(batch_size=1, grad_accum=2, epochs=2), None)
    assert [r["step"] for r in result.history] == [1, 2, 3, 4]
    per_epoch = sum(count_labels(ex.labels) for ex in data)
    assert sum(r["trained_tokens"] for r in result.history[:2]) == per_epoch
    assert sum(r["trained_tokens"] for r in result.history) == 2 * per_epoch
    assert result.history[1]["epoch"] == 1.0
