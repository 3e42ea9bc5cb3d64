"""The pretraining loop's batch schedule and its read-ahead thread (hubert_ee/train/prefetch.py)."""

import itertools

import numpy as np
import pytest

from hubert_ee.data.batching import bucket_batches, step_schedule
from hubert_ee.train.prefetch import prefetch


def old_loop_order(lengths, max_samples, seed, epoch, batch_pos, per_step, steps):
    """The loop as it was before the schedule was factored out (the reference)."""
    out, batches_epoch, batches = [], -1, []
    for _ in range(steps):
        if batches_epoch != epoch:
            batches, batches_epoch = bucket_batches(lengths, max_samples, seed, epoch), epoch
        steps_in_epoch = len(batches) // per_step
        out.append(batches[batch_pos * per_step : (batch_pos + 1) * per_step])
        batch_pos += 1
        if batch_pos >= steps_in_epoch:
            epoch, batch_pos = epoch + 1, 0
    return out


@pytest.mark.parametrize("start", [(0, 0), (0, 3), (2, 1)])
@pytest.mark.parametrize("per_step", [1, 2])
def test_step_schedule_matches_the_loop_across_epochs_and_resumes(start, per_step):
    lengths = np.random.default_rng(0).integers(8000, 48000, size=40)
    got = [g for g, _ in itertools.islice(step_schedule(lengths, 96000, 7, *start, per_step), 60)]
    assert got == old_loop_order(lengths, 96000, 7, *start, per_step, 60)


def test_prefetch_keeps_order_and_loads_each_item_once():
    calls = []

    def load(x):
        calls.append(x)
        return x * x

    assert list(prefetch(iter(range(20)), load, depth=3)) == [(i, i * i) for i in range(20)]
    assert calls == list(range(20))


def test_prefetch_raises_the_loader_error_at_its_item():
    def load(x):
        if x == 3:
            raise ValueError("bad utterance 3")
        return x

    it = prefetch(iter(range(10)), load)
    assert [next(it)[0] for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="bad utterance 3"):
        next(it)
