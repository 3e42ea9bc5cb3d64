"""Wall-clock speed measurement that survives noisy shared machines.

Candidates run on the same inputs in the same process with a fixed thread count, interleaved
(A B C A B C ...) so that a slow phase of the machine hits every candidate alike; each repeat
times a pass over all inputs, and the median over repeats is reported.

A decision taken on time (the fastest operating point, "same WER but faster") must not be one
that noise can flip: `paired_speedup` compares two candidates repeat by repeat (both timed in
the same round) and gives the median ratio with its spread; a candidate counts as faster only
when every repeat says so (`Speedup.clearly_faster`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Speedup:
    """baseline time / candidate time: median and range over paired repeats."""

    median: float
    low: float
    high: float

    @property
    def clearly_faster(self) -> bool:
        return self.low > 1.0

    def overlaps(self, other: Speedup) -> bool:
        """The two ranges overlap: timing cannot tell the two apart."""
        return self.low <= other.high and other.low <= self.high


def paired_speedup(baseline: Sequence[float], candidate: Sequence[float]) -> Speedup:
    if len(baseline) != len(candidate) or not baseline:
        raise ValueError("paired_speedup needs the same, non-zero number of repeats for both")
    ratios = [b / c for b, c in zip(baseline, candidate, strict=True)]
    return Speedup(statistics.median(ratios), min(ratios), max(ratios))


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def interleaved_times(
    candidates: dict[str, Callable[[Any], object]],
    inputs: Sequence[Any],
    repeats: int,
    threads: int | None = None,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Seconds per pass over `inputs`, one entry per repeat, for each candidate."""
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        times: dict[str, list[float]] = {name: [] for name in candidates}
        with torch.inference_mode():
            for r in range(warmup + repeats):
                for name, fn in candidates.items():
                    _sync()
                    t0 = time.perf_counter()
                    for x in inputs:
                        fn(x)
                    _sync()  # a GPU's kernels are asynchronous: time them to completion
                    if r >= warmup:
                        times[name].append(time.perf_counter() - t0)
        return times
    finally:
        torch.set_num_threads(old)


def interleaved_medians(
    candidates: dict[str, Callable[[Any], object]],
    inputs: Sequence[Any],
    repeats: int,
    threads: int | None = None,
    warmup: int = 1,
) -> dict[str, float]:
    """Median seconds per pass over `inputs` for each candidate."""
    times = interleaved_times(candidates, inputs, repeats, threads, warmup)
    return {name: statistics.median(ts) for name, ts in times.items()}
