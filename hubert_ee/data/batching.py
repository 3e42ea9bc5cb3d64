"""Length-bucketed batches bounded by padded audio seconds (fairseq's max_tokens)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def bucket_batches(
    lengths: np.ndarray, max_batch_samples: int, seed: int, epoch: int
) -> list[list[int]]:
    """Batches of similar length whose padded size (longest × count) fits max_batch_samples.

    Utterances are sorted by length (ties broken by a seeded shuffle), cut greedily into
    batches, and the batch order is shuffled per epoch; everything is a function of
    (lengths, seed, epoch), so a resumed run sees the same batches.
    """
    rng = np.random.default_rng([seed, epoch])
    order = np.lexsort((rng.permutation(len(lengths)), lengths))
    batches, current, longest = [], [], 0
    for i in order:
        n = int(lengths[i])
        if n > max_batch_samples:
            raise ValueError(
                f"an utterance of {n} samples does not fit max_batch_samples={max_batch_samples}"
            )
        if current and max(longest, n) * (len(current) + 1) > max_batch_samples:
            batches.append(current)
            current, longest = [], 0
        current.append(int(i))
        longest = max(longest, n)
    if current:
        batches.append(current)
    return [batches[j] for j in rng.permutation(len(batches))]


def padding_fraction(lengths: np.ndarray, batches: list[list[int]]) -> float:
    """Share of the padded batch tensors that is padding."""
    real = sum(int(lengths[b].sum()) for b in batches)
    padded = sum(int(lengths[b].max()) * len(b) for b in batches)
    return 1.0 - real / padded if padded else 0.0


def step_schedule(
    lengths: np.ndarray, max_samples: int, seed: int, epoch: int, batch_pos: int, per_step: int
) -> Iterator[tuple[list[list[int]], int]]:
    """The batches of each optimizer step from (epoch, batch_pos) on, endlessly, with the
    number of steps in that step's epoch: the order a resumed run must see again."""
    while True:
        batches = bucket_batches(lengths, max_samples, seed, epoch)
        steps_in_epoch = len(batches) // per_step
        for pos in range(batch_pos, steps_in_epoch):
            yield batches[pos * per_step : (pos + 1) * per_step], steps_in_epoch
        epoch, batch_pos = epoch + 1, 0
