"""Choices taken on wall-clock time must not be flipped by timing noise (synthetic timings)."""

from __future__ import annotations

import pytest

from hubert_ee.decode.early_exit_search import choose_operating_point
from hubert_ee.metrics.speed import Speedup, paired_speedup
from hubert_ee.registry import promotion


def test_paired_speedup_by_hand():
    sp = paired_speedup([2.0, 3.0, 4.0], [1.0, 2.0, 1.0])  # ratios 2.0, 1.5, 4.0
    assert (sp.median, sp.low, sp.high) == (2.0, 1.5, 4.0)
    assert sp.clearly_faster
    assert not paired_speedup([1.0, 1.0], [0.9, 1.1]).clearly_faster  # one repeat says slower
    with pytest.raises(ValueError, match="same, non-zero number of repeats"):
        paired_speedup([1.0], [1.0, 2.0])


def _row(name: str, wer: float, flops: float, sp: tuple[float, float, float]) -> dict:
    return {"name": name, "wer": wer, "speedup_flops": flops, "speedup": Speedup(*sp)}


def test_a_point_that_saves_no_flops_is_never_chosen_however_it_timed():
    # The probe: `confidence 0.85`, nobody exits (FLOPs 0.987x), dev timed "1.18x" on a loaded
    # machine. It must not be chosen; the honest candidate is.
    rows = [
        _row("nobody-exits", 0.90, 0.987, (1.18, 1.02, 1.40)),
        _row("real-exit", 0.91, 1.8, (1.10, 1.05, 1.15)),
    ]
    assert choose_operating_point(rows, wer_budget=0.95)["name"] == "real-exit"


def test_a_point_not_faster_in_every_repeat_is_not_chosen():
    rows = [_row("noisy", 0.90, 1.3, (1.2, 0.95, 1.5))]
    assert choose_operating_point(rows, wer_budget=0.95) is None


def test_points_timing_cannot_separate_are_decided_by_flops_then_wer():
    rows = [
        _row("fast-median", 0.92, 1.9, (2.05, 1.80, 2.20)),
        _row("more-flops-saved", 0.93, 2.4, (2.00, 1.85, 2.15)),  # ranges overlap
        _row("over-budget", 0.99, 3.0, (3.0, 2.9, 3.1)),
    ]
    assert choose_operating_point(rows, wer_budget=0.95)["name"] == "more-flops-saved"


def test_a_clearly_faster_point_wins_over_more_flops_saved_elsewhere():
    rows = [
        _row("clearly-fastest", 0.92, 1.9, (2.5, 2.4, 2.6)),
        _row("slower", 0.92, 2.4, (1.6, 1.5, 1.7)),  # no overlap: timing separates them
    ]
    assert choose_operating_point(rows, wer_budget=0.95)["name"] == "clearly-fastest"


def test_registry_promotes_on_lower_wer_and_on_speed_only_beyond_the_noise():
    assert promotion(0.40, None, None) == (True, "no champion yet")
    assert promotion(0.40, 0.45, None)[0]
    assert not promotion(0.45, 0.40, None)[0]
    # The probe: identical tensors timed 0.50175 s vs 0.50290 s: inside the repeats' spread
    promote, reason = promotion(0.5, 0.5, Speedup(1.002, 0.97, 1.03))
    assert not promote and "within noise" in reason
    promote, reason = promotion(0.5, 0.5, Speedup(1.5, 1.4, 1.6))
    assert promote and "same WER, faster" in reason
