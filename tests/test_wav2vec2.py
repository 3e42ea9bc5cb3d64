"""wav2vec 2.0's pieces on small hand-checkable tensors (issue 16, item 2)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hubert_ee.models.contrastive import (
    contrastive_loss,
    diversity_loss,
    feature_penalty,
    sample_negatives,
)
from hubert_ee.models.quantizer import GumbelQuantizer, QuantizerConfig, perplexity


def test_negatives_are_other_masked_frames_of_the_same_utterance_never_padding():
    gen = torch.Generator().manual_seed(0)
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[0, [1, 2, 3, 7]] = True
    mask[1, [0, 5]] = True  # two masked frames: each one's only distractor is the other
    mask[2, [4]] = True  # one masked frame: nothing to contrast with, no positive
    valid = torch.ones(3, 12, dtype=torch.bool)
    valid[:, 10:] = False  # padding, never masked
    assert not (mask & ~valid).any()
    pos, neg = sample_negatives(mask, k=50, generator=gen)
    assert pos.tolist() == [1, 2, 3, 7, 12, 17]
    for p, row in zip(pos.tolist(), neg.tolist(), strict=True):
        assert p not in row  # never the positive itself
        assert {r // 12 for r in row} == {p // 12}  # the same utterance
        assert all(mask.flatten()[r] for r in row)  # masked frames only, so never padding
    assert set(neg[0].tolist()) == {2, 3, 7}  # 50 draws cover all of the others
    assert neg[4].tolist() == [17] * 50 and neg[5].tolist() == [12] * 50


def test_no_masked_pairs_gives_no_positives_and_a_zero_loss():
    pos, neg = sample_negatives(torch.zeros(2, 5, dtype=torch.bool), k=3)
    assert pos.shape == (0,) and neg.shape == (0, 3)
    ctx = torch.randn(2, 5, 4, requires_grad=True)
    loss, acc = contrastive_loss(ctx, torch.randn(2, 5, 4), pos, neg)
    assert float(loss) == 0.0
    loss.backward()  # still part of the graph
    assert ctx.grad is not None


def test_contrastive_loss_equals_a_direct_recomputation():
    torch.manual_seed(1)
    ctx, tgt = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, [0, 2, 5]] = True
    mask[1, [1, 3]] = True
    pos, neg = sample_negatives(mask, k=4, generator=torch.Generator().manual_seed(3))
    loss, acc = contrastive_loss(ctx, tgt, pos, neg, temperature=0.1)
    c, y = ctx.reshape(12, 8), tgt.reshape(12, 8)
    terms, hits = [], 0
    for p, row in zip(pos.tolist(), neg.tolist(), strict=True):
        sims = [F.cosine_similarity(c[p], y[j], dim=0).item() / 0.1 for j in [p, *row]]
        terms.append(-(sims[0] - math.log(sum(math.exp(s) for s in sims))))
        hits += max(range(len(sims)), key=sims.__getitem__) == 0
    assert float(loss) == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    assert float(acc) == pytest.approx(hits / len(terms))


def test_a_distractor_identical_to_the_positive_is_left_out():
    ctx = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
    tgt = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])  # frames 0 and 2: same code
    pos, neg = torch.tensor([0]), torch.tensor([[2, 1]])
    loss, _ = contrastive_loss(ctx, tgt, pos, neg, temperature=1.0)
    # only frame 1 competes: −log(e^1 / (e^1 + e^0))
    assert float(loss) == pytest.approx(-math.log(math.e / (math.e + 1.0)), rel=1e-6)


def test_diversity_loss_at_uniform_and_collapsed_code_distributions():
    g, v = 2, 8
    uniform = torch.full((10, g, v), 1.0 / v)
    assert float(perplexity(uniform)) == pytest.approx(g * v, rel=1e-5)
    assert float(diversity_loss(perplexity(uniform), g, v)) == pytest.approx(0.0, abs=1e-5)
    collapsed = F.one_hot(torch.zeros(10, g, dtype=torch.long), v).float()
    assert float(perplexity(collapsed)) == pytest.approx(g, rel=1e-4)
    assert float(diversity_loss(perplexity(collapsed), g, v)) == pytest.approx((g * v - g) / (g * v), rel=1e-4)  # fmt: skip


def test_quantizer_codes_are_one_hot_per_group_and_gradients_flow():
    torch.manual_seed(0)
    cfg = QuantizerConfig(groups=2, entries=5, dim=6)
    q = GumbelQuantizer(4, cfg).train()
    x = torch.randn(2, 3, 4, requires_grad=True)
    out = q(x, step=0, generator=torch.Generator().manual_seed(0))
    assert out.vectors.shape == (2, 3, 6) and out.codes.shape == (2, 3, 2)
    # forward: each group's half of the vector is exactly one codebook entry
    for b in range(2):
        for t in range(3):
            for g in range(2):
                chosen = q.codebook[g, out.codes[b, t, g]]
                assert torch.allclose(out.vectors[b, t, 3 * g : 3 * g + 3], chosen)
    out.vectors.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # straight-through to the input
    assert q.weight_proj.weight.grad.abs().sum() > 0 and q.codebook.grad.abs().sum() > 0
    assert 1.0 <= float(out.code_perplexity) <= 2 * 5


def test_temperature_anneals_from_max_to_min_and_eval_takes_the_argmax():
    cfg = QuantizerConfig(groups=1, entries=4, dim=2)
    assert cfg.temperature(0) == 2.0
    assert cfg.temperature(1000) == pytest.approx(2.0 * 0.999995**1000)
    assert cfg.temperature(10_000_000) == 0.5
    q = GumbelQuantizer(3, cfg).eval()
    x = torch.randn(1, 4, 3)
    out = q(x)
    assert torch.equal(out.codes[..., 0], q.weight_proj(x).argmax(-1))


def test_perplexity_ignores_padding_and_feature_penalty_reads_valid_frames():
    cfg = QuantizerConfig(groups=1, entries=4, dim=2)
    q = GumbelQuantizer(3, cfg).eval()
    x = torch.randn(1, 5, 3)
    valid = torch.tensor([[True, True, True, False, False]])
    padded = x.clone()
    padded[0, 3:] = 100.0  # garbage where there is no audio
    assert torch.allclose(q(x[:, :3]).prob_perplexity, q(padded, valid=valid).prob_perplexity)
    f = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [9.0, 9.0]]])
    assert float(feature_penalty(f, torch.tensor([[True, True, False]]))) == pytest.approx(5.0)


def _tiny_head(**kw):
    from dataclasses import replace

    from hubert_ee.models.config import tiny
    from hubert_ee.models.encoder import HubertEncoder
    from hubert_ee.models.wav2vec2_head import Wav2Vec2PretrainModel

    torch.manual_seed(0)
    cfg = replace(tiny(), num_layers=1, embed_dim=32, num_heads=2, ffn_dim=64, dropout=0.0)
    quant = QuantizerConfig(groups=2, entries=8, dim=16)
    return Wav2Vec2PretrainModel(HubertEncoder(cfg), quant, final_dim=16, num_negatives=5, **kw)


def test_the_wav2vec2_head_adds_its_parts_and_trains_every_part():
    model = _tiny_head().train()
    wave, lengths = torch.randn(2, 16000), torch.tensor([16000, 9000])
    frames = int(model.encoder.frame_lengths(lengths).max())
    mask = torch.zeros(2, frames, dtype=torch.bool)
    mask[:, 5:25] = True  # the second utterance's valid frames end before 30
    out = model(wave, lengths, None, mask, step=10, generator=torch.Generator().manual_seed(0))
    expected = out["contrastive"] + 0.1 * out["diversity"] + 10.0 * out["feature_penalty"]
    assert float(out["loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(out["masked_frames"]) == 40 and 0 <= float(out["masked_acc"]) <= 1
    assert float(out["temperature"]) == pytest.approx(2.0 * 0.999995**10)
    out["loss"].backward()
    for name in ("quantizer.weight_proj.weight", "quantizer.codebook", "project_q.weight",
                 "final_proj.weight", "encoder.mask_embedding"):  # fmt: skip
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_masked_padding_is_never_a_target():
    model = _tiny_head().eval()
    wave, lengths = torch.randn(2, 16000), torch.tensor([16000, 4000])
    frames = int(model.encoder.frame_lengths(lengths).max())
    short = int(model.encoder.frame_lengths(lengths)[1])
    mask = torch.zeros(2, frames, dtype=torch.bool)
    mask[1, :] = True  # asks to mask the padding too
    out = model(wave, lengths, None, mask, generator=torch.Generator().manual_seed(0))
    assert float(out["masked_frames"]) == short
