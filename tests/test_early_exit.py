"""Early exit: criteria against hand-computed values, inference that really stops, search."""

from __future__ import annotations

import math

import pytest
import torch

from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.early_exit_search import ExitTable, evaluate_point, exit_choice
from hubert_ee.models.config import tiny
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.early_exit import (
    EarlyExitModel,
    ExitConfig,
    confidence_score,
    entropy_score,
)
from hubert_ee.models.encoder import HubertEncoder

V = CharVocab()


def test_criteria_hand_computed():
    p = torch.tensor([[[0.5, 0.5], [1.0, 0.0], [0.3, 0.7]]])  # third frame is padding
    lp = torch.log(p.clamp(min=1e-30))
    lengths = torch.tensor([2])
    # entropy: −1/(T·C) Σ p log p = (ln 2 + 0) / (2·2)
    assert entropy_score(lp, lengths).item() == pytest.approx(math.log(2) / 4, rel=1e-5)
    # confidence: mean over frames of the max probability = (0.5 + 1.0) / 2
    assert confidence_score(lp, lengths).item() == pytest.approx(0.75, rel=1e-6)
    # no lengths: every frame counts (batch-1 inference); the same scores as full lengths
    full = torch.tensor([3])
    for score in (entropy_score, confidence_score):
        assert score(lp, None).item() == pytest.approx(score(lp, full).item(), rel=1e-6)
    assert confidence_score(lp, None).item() == pytest.approx((0.5 + 1.0 + 0.7) / 3, rel=1e-6)


def _model(layers=(1, 2, 3), branch: str = "attention") -> EarlyExitModel:
    torch.manual_seed(0)
    enc = HubertEncoder(tiny())
    return EarlyExitModel(CTCModel(enc, V), ExitConfig(layers, branch)).eval()


def _count_layer_calls(model: EarlyExitModel) -> list[int]:
    calls = [0] * model.num_layers
    for i, layer in enumerate(model.student.encoder.encoder.transformer.layers):
        layer.register_forward_pre_hook(lambda m, a, i=i: calls.__setitem__(i, calls[i] + 1))
    return calls


@pytest.mark.parametrize("branch", ["attention", "linear"])
def test_exit_at_the_first_branch_never_runs_the_layers_above(branch):
    model = _model(branch=branch)
    calls = _count_layer_calls(model)
    wave = torch.randn(1, 16000)
    res = model.early_exit(wave, None, "confidence", -1.0)  # every branch passes
    assert res.exit_layer == [1]
    assert calls == [1, 0, 0, 0]
    res = model.early_exit(wave, None, "confidence", 2.0)  # no branch passes: full depth
    assert res.exit_layer == [4] and calls == [2, 1, 1, 1]
    full = model.student(wave)
    assert torch.allclose(res.log_probs[0], full.logits[0].log_softmax(-1), atol=1e-5)


@pytest.mark.parametrize("branch", ["attention", "linear"])
def test_a_static_exit_runs_the_first_k_layers_and_their_branch(branch):
    model = _model(branch=branch)
    calls = _count_layer_calls(model)
    wave = torch.randn(1, 16000)
    out = model.static_exit(wave, 2)
    assert calls == [1, 1, 0, 0]
    torch.testing.assert_close(out, model(wave).exits[2], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no exit branch at layer 4"):
        model.static_exit(wave, 4)


@pytest.mark.parametrize("branch", ["attention", "linear"])
def test_batched_exit_drops_utterances_and_matches_batch_size_one(branch):
    model = _model(branch=branch)
    calls = _count_layer_calls(model)
    torch.manual_seed(1)
    waves = [torch.randn(n) * s for n, s in ((16000, 1.0), (12000, 0.01), (20000, 3.0))]
    conf = []
    for w in waves:  # branch-1 confidence of each utterance alone
        out = model(w[None])
        conf.append(confidence_score(out.exits[1].log_softmax(-1), out.frame_lengths).item())
    th = sorted(conf)[1]  # exactly one utterance (the most confident) exits at layer 1
    singles = [model.early_exit(w[None], None, "confidence", th) for w in waves]
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(3, int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    calls[:] = [0] * 4
    res = model.early_exit(batch, lengths, "confidence", th)
    assert res.exit_layer == [s.exit_layer[0] for s in singles]
    assert sorted(res.exit_layer)[0] == 1
    assert calls[0] == 1 and calls[1] == 1  # one batched call per layer, smaller after the exit
    for r, s in zip(res.log_probs, singles, strict=True):
        assert r.shape == s.log_probs[0].shape
        assert torch.allclose(r, s.log_probs[0], atol=1e-4)


def test_linear_branch_starts_as_the_students_head_on_the_normalised_layer():
    model = _model(branch="linear")
    head = model.student.head
    h = torch.randn(2, 7, head.in_features) * 3 + 1
    branch = model.branches["2"]
    expect = torch.nn.functional.layer_norm(h, (head.in_features,)) @ head.weight.T + head.bias
    assert torch.allclose(branch(h, None), expect, atol=1e-5)
    branch.head.weight.data.add_(1.0)  # a copy: training a branch leaves the main head alone
    assert not torch.equal(branch.head.weight, head.weight)
    n = sum(p.numel() for p in branch.parameters())
    assert n == 2 * head.in_features + head.weight.numel() + head.out_features


def test_inference_logits_skip_the_variance_head_and_equal_the_forward_logits():
    model = _model().student
    calls = []
    model.variance_head.register_forward_hook(lambda *a: calls.append(1))
    wave = torch.randn(2, 12000)
    lengths = torch.tensor([12000, 9000])
    out = model.logits(wave, lengths)
    assert out.variance is None and calls == []
    ref = model(wave, lengths)
    assert torch.allclose(out.logits, ref.logits) and torch.equal(
        out.frame_lengths, ref.frame_lengths
    )
    ee, calls = _model(), []  # the early-exit path's final head reads the logits alone too
    ee.student.variance_head.register_forward_hook(lambda *a: calls.append(1))
    assert ee.early_exit(wave[:1], None, "confidence", 2.0).exit_layer == [4]
    assert calls == []


def test_a_bad_branch_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="attention or linear, got 'conv'"):
        ExitConfig((1,), "conv")


def test_bad_exit_layers_are_a_clear_error():
    with pytest.raises(ValueError, match="within 1..3"):
        _model(layers=(1, 4))


def test_threshold_choice_and_point_metrics():
    table = ExitTable(
        layers=[1, 2, 4],
        entropy=torch.tensor([[0.001, 0.001, 0.0], [0.01, 0.002, 0.0]]),
        confidence=torch.tensor([[0.99, 0.99, 1.0], [0.80, 0.97, 1.0]]),
        hyps=[["a b", "x"], ["a b", "c d"], ["a b", "c d"]],
        flops=torch.tensor([[10.0, 20.0, 40.0], [10.0, 20.0, 40.0]], dtype=torch.float64),
        flops_full=torch.tensor([36.0, 36.0], dtype=torch.float64),
        refs=["a b", "c d"],
    )
    assert exit_choice(table, "entropy", 0.005).tolist() == [0, 1]
    assert exit_choice(table, "confidence", 0.995).tolist() == [2, 2]
    p = evaluate_point(table, "confidence", 0.9)  # utt 0 at layer 1, utt 1 at layer 2
    assert p["wer"] == 0.0 and p["mean_exit_layer"] == 1.5
    assert p["speedup_flops"] == pytest.approx(72 / 30)
    p = evaluate_point(table, "entropy", 0.05)  # both at layer 1: utt 1 says 'x'
    assert p["wer"] == pytest.approx(2 / 4) and p["exit_share"]["1"] == 1.0


def test_threshold_grid_adds_quantiles_of_the_branch_scores():
    from hubert_ee.decode.early_exit_search import threshold_grid

    table = ExitTable(
        layers=[1, 4],
        entropy=torch.tensor([[0.1, 0.0], [0.2, 0.0], [0.3, 0.0]]),
        confidence=torch.tensor([[0.5, 1.0], [0.6, 1.0], [0.7, 1.0]]),
        hyps=[["a"] * 3, ["a"] * 3],
        flops=torch.ones(3, 2, dtype=torch.float64),
        flops_full=torch.ones(3, dtype=torch.float64),
        refs=["a"] * 3,
    )
    grid = threshold_grid(table, "entropy", [0.003], 3)
    assert grid[0] == 0.003 and grid[1:] == pytest.approx([0.11, 0.2, 0.29])  # final layer ignored
    assert threshold_grid(table, "confidence", [0.9], 0) == [0.9]


def test_exit_criterion_is_strict_and_names_a_bad_criterion():
    from hubert_ee.models.early_exit import ExitCriterion

    scores = torch.tensor([0.1, 0.2, 0.3])
    assert ExitCriterion("entropy", 0.2).accepts(scores).tolist() == [True, False, False]
    assert ExitCriterion("confidence", 0.2).accepts(scores).tolist() == [False, False, True]
    lp = torch.log_softmax(torch.randn(2, 5, 4), -1)
    lengths = torch.tensor([5, 3])
    rule = ExitCriterion("confidence", 0.5)
    assert torch.equal(rule.passes(lp, lengths), rule.score(lp, lengths) > 0.5)
    with pytest.raises(ValueError, match="entropy or confidence, got 'margin'"):
        ExitCriterion("margin", 0.5)


def test_a_one_layer_student_gets_a_clear_error_not_an_empty_optimizer(root):
    from hubert_ee.config import load_params
    from hubert_ee.train.exit_training import exit_config

    ex = load_params(root / "params.yaml").exits
    assert exit_config(ex, 3).layers == (1, 2)
    with pytest.raises(ValueError, match="has 1 Transformer layer"):
        exit_config(ex, 1)
