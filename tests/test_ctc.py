"""CTC vocabulary, decoding, losses and WER against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.ctc import BeamDecoder, greedy_decode, greedy_ids
from hubert_ee.metrics.wer import cer, wer
from hubert_ee.models.config import tiny
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.train.losses import (
    alignment_posteriors,
    ctc_loss,
    frame_integrated_ctc_loss,
    sampled_ctc_loss,
    uncertain_ctc_loss,
)

V = CharVocab()


def one_hot_path(path: list[int], classes: int, sharp: float = 20.0) -> torch.Tensor:
    """(frames, classes) log-probs whose best path is `path`."""
    x = torch.full((len(path), classes), -sharp)
    x[torch.arange(len(path)), torch.tensor(path)] = 0.0
    return x.log_softmax(-1)


def test_vocab_layout_and_round_trip():
    assert V.tokens[:3] == ("<blank>", "|", "'") and len(V) == 29
    ids = V.encode("didn't  see")
    assert V.tokens[ids[0]] == "d" and ids.tolist().count(V.boundary) == 1
    assert V.decode(ids) == "didn't see"
    with pytest.raises(ValueError, match="'7'"):
        V.encode("room 7")


@given(st.lists(st.sampled_from("abcdefghijklmnopqrstuvwxyz'"), min_size=1, max_size=30))
@settings(max_examples=50, deadline=None)
def test_greedy_inverts_a_ctc_path(chars):
    """Any label sequence, written as a CTC path with blanks between repeats, decodes back."""
    ids = V.encode("".join(chars)).tolist()
    path = [0]
    for i, c in enumerate(ids):
        if i and ids[i - 1] == c:
            path.append(V.blank)
        path += [c, c]
    assert greedy_ids(one_hot_path(path, len(V)), len(path)) == ids


def test_greedy_respects_lengths_and_merges():
    a, b = V.index["a"], V.index["b"]
    lp = one_hot_path([a, a, 0, a, V.boundary, b, b, b], len(V))
    batch = torch.stack([lp, lp])
    assert greedy_decode(batch, torch.tensor([8, 3]), V) == ["aa b", "a"]


def test_ctc_loss_matches_the_single_path_probability():
    """T = 1 frame, target 'a': the only alignment is 'a', so loss = −log p(a)."""
    logits = torch.log(torch.tensor([[[0.5, 0.2, 0.3]]]))  # blank, |, a
    loss = ctc_loss(logits, torch.tensor([1]), torch.tensor([2]), torch.tensor([1]))
    assert loss.item() == pytest.approx(-math.log(0.3), rel=1e-5)  # mean reduction ÷ 1 target


def test_ctc_loss_two_frames_sums_alignments():
    """T = 2, target 'a': alignments aa, a-, -a → p = pa² + pa·pb + pb·pa; ÷ target length 1."""
    p = torch.tensor([0.5, 0.2, 0.3])
    logits = torch.log(p).expand(1, 2, 3)
    loss = ctc_loss(logits, torch.tensor([2]), torch.tensor([2]), torch.tensor([1]))
    expected = -math.log(0.3 * 0.3 + 2 * 0.3 * 0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_sampled_ctc_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 12, len(V))
    lengths, targets, tlen = (
        torch.tensor([12, 9]),
        torch.tensor([3, 4, 5, 6, 7]),
        torch.tensor([3, 2]),
    )
    plain = ctc_loss(logits, lengths, targets, tlen)
    zero = torch.zeros_like(logits)
    assert sampled_ctc_loss(logits, zero, lengths, targets, tlen, 4).item() == pytest.approx(
        plain.item(), rel=1e-6
    )
    assert sampled_ctc_loss(logits, None, lengths, targets, tlen, 4).item() == plain.item()
    # with noise: −log of the mean likelihood over the same S ε draws, per utterance, then
    # ÷ target length and averaged over the batch
    var = torch.full_like(logits, 0.5)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    got = sampled_ctc_loss(logits, var, lengths, targets, tlen, 3, generator=g1)
    draws = [logits + 0.5**0.5 * torch.randn(logits.shape, generator=g2) for _ in range(3)]
    want = 0.0
    for b, (start, n) in enumerate(((0, 3), (3, 2))):
        likelihoods = [
            math.exp(-n * ctc_loss(d[b : b + 1], lengths[b : b + 1], targets[start : start + n],
                                   tlen[b : b + 1]).item())
            for d in draws
        ]  # fmt: skip
        want += -math.log(sum(likelihoods) / 3) / n / 2
    assert got.item() == pytest.approx(want, rel=1e-5)
    assert got.item() != pytest.approx(plain.item(), rel=1e-3)


def test_integrated_likelihood_rewards_variance_only_where_the_logits_are_wrong():
    """The review's finding (issue 14): averaging CTC over noise samples is minimised by σ² → 0.
    Integrating the likelihood instead, logits that do not explain the target want a larger
    σ², logits that do want a small one."""
    frames, classes = 6, len(V)
    targets, tlen, lengths = torch.tensor([5, 6]), torch.tensor([2]), torch.tensor([frames])
    wrong = 2.0 * torch.randn(1, frames, classes, generator=torch.Generator().manual_seed(0))
    right = torch.zeros(1, frames, classes)
    right[0, :, 0] = 8.0
    right[0, 1, 5] = right[0, 4, 6] = 16.0  # blank, 5, blank, blank, 6, blank

    def integrated(logits: torch.Tensor, var: float) -> float:
        g = torch.Generator().manual_seed(0)
        v = torch.full_like(logits, var)
        return sampled_ctc_loss(logits, v, lengths, targets, tlen, 64, generator=g).item()

    def averaged(logits: torch.Tensor, var: float) -> float:  # the recipe before issue 14
        g = torch.Generator().manual_seed(0)
        draws = (logits + var**0.5 * torch.randn(logits.shape, generator=g) for _ in range(64))
        return sum(ctc_loss(d, lengths, targets, tlen).item() for d in draws) / 64

    grid = [0.018, 0.25, 1.0, 4.0]
    on_wrong = [integrated(wrong, v) for v in grid]
    on_right = [integrated(right, v) for v in grid]
    assert on_wrong == sorted(on_wrong, reverse=True)  # variance explains the error
    assert on_right == sorted(on_right)  # and only costs where the logits are right
    assert on_right[0] < on_right[-1]
    averaged_wrong = [averaged(wrong, v) for v in grid]
    assert averaged_wrong == sorted(averaged_wrong)  # the old loss: σ² → 0 everywhere


def test_sampled_loss_trains_the_variance_head():
    enc = HubertEncoder(tiny())
    model = CTCModel(enc, V, uncertainty=True)
    wave = torch.randn(1, 16000)
    out = model(wave, torch.tensor([16000]))
    assert out.variance is not None and (out.variance > 0).all()
    loss = sampled_ctc_loss(
        out.logits, out.variance, out.frame_lengths, torch.tensor([5, 6]), torch.tensor([2]), 2
    )
    loss.backward()
    assert model.variance_head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.feature_extractor.parameters())  # frozen front end


def test_wer_cer_hand_computed():
    refs = ["the cat sat", "a dog"]
    hyps = ["the cat sit down", ""]
    # sentence 1: 1 substitution + 1 insertion; sentence 2: 2 deletions → 4 / 5 words
    assert wer(refs, hyps) == pytest.approx(4 / 5)
    assert cer(["abc"], ["abd"]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2 references but 1"):
        wer(refs, hyps[:1])


def test_beam_search_agrees_with_greedy_on_peaked_emissions_and_uses_the_lexicon():
    a, b, t = V.index["a"], V.index["b"], V.index["t"]
    path = [0, b, 0, a, a, t, V.boundary, a, 0]
    lp = one_hot_path(path, len(V))[None]
    assert BeamDecoder(V, 8)(lp, None) == greedy_decode(lp, None, V) == ["bat a"]
    # ambiguous frame: 'bat' vs 'bet' nearly tied; the lexicon only knows 'bet'
    x = one_hot_path(path, len(V))
    x[3] = torch.full((len(V),), -20.0)
    x[3, a], x[3, V.index["e"]] = math.log(0.55), math.log(0.45)
    x[4] = x[3]
    lp = x.log_softmax(-1)[None]
    assert greedy_decode(lp, None, V) == ["bat a"]
    lexicon = BeamDecoder(V, 8, words={"bet", "a"})
    # the last word has no boundary after it: flashlight alone gave 'bet' or 'bet a' at random
    assert {tuple(lexicon(lp, None)) for _ in range(30)} == {("bet a",)}


def test_lexicon_beam_closes_each_utterance_at_its_own_length():
    a, b, t = V.index["a"], V.index["b"], V.index["t"]
    short = one_hot_path([0, a, 0], len(V))
    long = one_hot_path([0, b, a, t, V.boundary, a, a, 0], len(V))
    batch = torch.full((2, len(long), len(V)), -20.0).log_softmax(-1)
    batch[0, : len(short)], batch[1] = short, long
    lexicon = BeamDecoder(V, 8, words={"bat", "a"})
    for _ in range(10):
        assert lexicon(batch, torch.tensor([len(short), len(long)])) == ["a", "bat a"]


def test_alignment_posteriors_are_distributions_on_valid_frames_and_follow_the_only_path():
    """With as many frames as target tokens CTC has one path: γ is one-hot on the target."""
    logits = torch.randn(2, 4, 5)
    targets = torch.tensor([1, 2, 3, 4, 2, 2])  # utterance 2: "2 2" needs a blank between
    tlen = torch.tensor([4, 2])
    lengths = torch.tensor([4, 3])
    gamma, valid = alignment_posteriors(logits, lengths, targets, tlen)
    assert valid.tolist() == [[True] * 4, [True, True, True, False]]
    assert torch.allclose(gamma[0], F.one_hot(torch.tensor([1, 2, 3, 4]), 5).float(), atol=1e-5)
    assert torch.allclose(gamma[1, :3], F.one_hot(torch.tensor([2, 0, 2]), 5).float(), atol=1e-5)
    _, ok = alignment_posteriors(logits, torch.tensor([4, 1]), targets, tlen)
    assert ok[1].sum() == 0  # a transcript that cannot fit its frames gives no target


def test_frame_integrated_loss_rewards_variance_only_where_the_logits_are_wrong():
    """Per frame: at a confidently wrong frame some σ² lowers the loss; at a confidently right
    frame any σ² raises it; and σ = 0 gives CTC + the cross-entropy of softmax(f) against γ."""
    targets, tlen, lengths = torch.tensor([1, 2]), torch.tensor([2]), torch.tensor([2])
    right = torch.tensor([[[-5.0, 5.0, -5.0], [-5.0, -5.0, 5.0]]])
    wrong = torch.tensor([[[-5.0, 5.0, -5.0], [-5.0, 5.0, -3.0]]])  # frame 2 says 1, truth 2

    def loss(logits, var2):
        g = torch.Generator().manual_seed(0)
        v = torch.full_like(logits, var2)
        return frame_integrated_ctc_loss(logits, v, lengths, targets, tlen, 64, generator=g).item()

    plain = ctc_loss(wrong, lengths, targets, tlen).item()
    ce = -F.log_softmax(wrong, -1)[0, [0, 1], [1, 2]].mean().item()
    assert loss(wrong, 0.0) == pytest.approx(plain + ce, rel=1e-4)
    assert min(loss(wrong, v) for v in (1.0, 4.0, 16.0)) < loss(wrong, 0.0) - 0.5
    assert loss(right, 4.0) > loss(right, 0.0)


def test_frame_integrated_loss_trains_only_the_variance_head():
    logits = torch.randn(1, 6, 4, requires_grad=True)
    var = torch.full((1, 6, 4), 0.5, requires_grad=True)
    args = (torch.tensor([6]), torch.tensor([1, 2]), torch.tensor([2]), 4)
    frame_integrated_ctc_loss(logits, var, *args).backward()
    ctc_grad = torch.autograd.grad(ctc_loss(logits, *args[:3]), logits)[0]
    assert torch.allclose(logits.grad, ctc_grad, atol=1e-6)  # f sees plain CTC only
    assert var.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="sequence \\| frame"):
        uncertain_ctc_loss("token", logits, var, *args)
