"""Wall-clock speed measurement that survives noisy shared machines.

Candidates run on the same inputs in the same process with a fixed thread count, interleaved
(A B C A B C ...) so that a slow phase of the machine hits every candidate alike; each repeat
times a pass over all inputs, and the median over repeats is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch


def interleaved_medians(
    candidates: dict[str, Callable[[Any], object]],
    inputs: Sequence[Any],
    repeats: int,
    threads: int | None = None,
    warmup: int = 1,
) -> dict[str, float]:
    """Median seconds per pass over `inputs` for each candidate."""
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        times: dict[str, list[float]] = {name: [] for name in candidates}
        with torch.inference_mode():
            for r in range(warmup + repeats):
                for name, fn in candidates.items():
                    t0 = time.perf_counter()
                    for x in inputs:
                        fn(x)
                    if r >= warmup:
                        times[name].append(time.perf_counter() - t0)
        return {name: statistics.median(ts) for name, ts in times.items()}
    finally:
        torch.set_num_threads(old)
