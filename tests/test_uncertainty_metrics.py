"""The uncertainty-head checks (DESIGN §6) against hand-built cases."""

from __future__ import annotations

import math

import pytest
import torch

from hubert_ee.data.vocab import CharVocab
from hubert_ee.metrics.uncertainty import greedy_tokens, tokens_correct, uncertainty_quality

V = CharVocab()


def test_tokens_correct_follows_the_edit_distance_alignment():
    assert tokens_correct([1, 2, 3], [1, 4, 3]) == [True, False, True]  # substitution
    assert tokens_correct([1, 2], [1, 5, 2]) == [True, False, True]  # insertion
    assert tokens_correct([1, 2, 3], [1, 3]) == [True, True]  # deletion: nothing to mark
    assert tokens_correct([], [7, 8]) == [False, False]
    assert tokens_correct([1, 2], []) == []


def test_greedy_tokens_are_emitted_at_the_first_frame_of_their_run():
    path = [0, 5, 5, 0, 5, 6, 6, 0]  # blank a a blank a b b blank → tokens 5, 5, 6
    lp = torch.nn.functional.one_hot(torch.tensor(path), len(V)).float().log()
    assert greedy_tokens(lp) == ([5, 5, 6], [1, 4, 5])


def _utterance(path: list[int], token_var: dict[int, float], base: float = 0.01):
    lp = torch.full((len(path), len(V)), -20.0)
    lp[torch.arange(len(path)), torch.tensor(path)] = 0.0
    var = torch.full((len(path), len(V)), base / len(V))
    for frame, v in token_var.items():
        var[frame] = v / len(V)
    return lp, var


def test_uncertainty_quality_is_perfect_when_sigma_marks_the_errors():
    a, b, c = (V.encode(ch).item() for ch in "abc")
    outs = [
        _utterance([a, 0, b, 0, c], {}),  # "abc": right, quiet
        _utterance([a, 0, b, 0, b], {4: 2.0}),  # "abb": last token wrong and uncertain
        _utterance([c, 0, c, 0, c], {0: 3.0, 2: 3.0}),  # "ccc": two wrong, both uncertain
    ]
    q = uncertainty_quality(outs, ["abc", "abc", "abc"], V)
    assert q["auroc_token"] == pytest.approx(1.0)
    assert q["spearman_cer"] == pytest.approx(1.0)
    # σ² that marks the right tokens instead: AUROC 0
    flipped = [_utterance([a, 0, b, 0, b], {0: 2.0, 2: 2.0})]
    assert uncertainty_quality(flipped, ["abc"], V)["auroc_token"] == pytest.approx(0.0)
    # nothing to rank: undefined, not a made-up number
    assert math.isnan(uncertainty_quality(outs[:1], ["abc"], V)["spearman_cer"])
