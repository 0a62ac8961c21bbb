from tests.train.test_loop import _cfg, _data, _run

from tuneforge.lm_loss import CausalLMLoss
from tuneforge.models import tiny_llama
from tuneforge.train.batching import count_labels, epoch_batches
from tuneforge.train.loop import step_slice, train_loop


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


def test_an_epoch_that_packs_otherwise_spreads_over_the_same_steps():
    def steps_of(n_batches, steps=5, per_step=2, world=1):
        return [list(range(n_batches))[step_slice(n_batches, steps, k, per_step, world)] for k in range(steps)]

    assert steps_of(10) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]  # as the first epoch: per_step each
    assert steps_of(9) == [[0, 1], [2, 3], [4, 5], [6, 7], [8]]  # the last step takes what is left
    fewer, more = steps_of(7), steps_of(12)
    assert all(fewer) and sum(fewer, []) == list(range(7))  # no empty step (per_step slices left the last one empty)
    assert sum(more, []) == list(range(12))  # none skipped (per_step slices skipped two)
    # Under DDP, fewer than one micro-batch per process left over is the first epoch's leftover case.
    assert steps_of(11, world=2) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert all(len(s) >= 2 for s in steps_of(13, per_step=2, world=2))


def test_a_later_epoch_with_fewer_micro_batches_trains_every_one(one_thread):
    """Packing made epoch 1 two micro-batches short: its steps still train all it has, none on nothing."""
    data = _data(10)

    def batches_of(epoch):
        batches = epoch_batches(data, batch_size=1, packing=False, block_size=64, pad_id=0, seed=0, epoch=epoch)
        return batches if epoch == 0 else batches[:8]

    model = tiny_llama(vocab_size=64)
    result = train_loop(model, CausalLMLoss(model, whole_forward=False), batches_of,
                        _cfg(batch_size=1, grad_accum=2, epochs=2), run_dir=None)
    second = result.history[5:]
    assert len(second) == 5 and all(r["trained_tokens"] > 0 for r in second)
    assert sum(r["trained_tokens"] for r in second) == sum(b.n_units for b in batches_of(1))
