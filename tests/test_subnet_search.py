"""The subnet search's decisions (issue 15, item 2): the Pareto front, the budgets, the choice,
and the timing and scoring it rests on, on small tensors."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from hubert_ee.models.config import EncoderConfig
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.student import init_from_teacher
from hubert_ee.models.supernet import Subnet, Supernet
from hubert_ee.train.subnet_search import Candidate, choose, latencies, mark_budget, pareto_front
from hubert_ee.train.supernet import STAGES, loop_config, supernet_encoder


def _cand(
    dims: tuple[int, int, int, int], params_ratio: float, loss: float, rel: float
) -> Candidate:
    return Candidate(*dims, params=int(params_ratio * 1000), params_ratio=params_ratio,
                     dev_loss=loss, dev_cosine=0.0, batch1_ms=10 * rel, batched_ms=5 * rel,
                     latency_rel=rel, batched_rel=rel)  # fmt: skip


def test_the_pareto_front_keeps_what_nothing_beats_on_both_axes():
    #        fast+bad   slow+good   dominated   equal cost, worse   duplicate of the first
    pts = [(0.2, 5.0), (0.8, 1.0), (0.9, 2.0), (0.2, 6.0), (0.2, 5.0)]
    assert pareto_front(pts) == [True, True, False, False, True]
    assert pareto_front([]) == [] and pareto_front([(1.0, 1.0)]) == [True]


def test_the_choice_is_the_best_dev_loss_within_both_budgets():
    cands = [
        _cand((64, 2, 128, 2), 0.10, 9.0, 0.30),  # small, fast, worst loss
        _cand((64, 2, 128, 4), 0.20, 7.0, 0.50),  # the expected choice
        _cand((96, 2, 192, 4), 0.40, 6.0, 0.55),  # better, but over the size budget
        _cand((64, 2, 256, 6), 0.30, 5.0, 0.70),  # better, but over the latency budget
    ]
    mark_budget(cands, max_params_ratio=0.333, latency_budget_rel=0.6, latency_budget_ms=None)
    assert [c.within_budget for c in cands] == [True, True, False, False]
    assert [c.pareto for c in cands] == [True, True, True, True]
    assert choose(cands).subnet == Subnet(64, 2, 128, 4)
    mark_budget(cands, 0.333, 0.6, latency_budget_ms=4.0)  # 10 ms x rel: only the first fits
    assert choose(cands).subnet == Subnet(64, 2, 128, 2)


def test_no_subnet_within_budget_says_what_the_closest_ones_need():
    cands = [_cand((64, 2, 128, 2), 0.5, 1.0, 0.9)]
    mark_budget(cands, 0.333, 0.6, None)
    with pytest.raises(ValueError, match=r"smallest has 0.500 of the teacher's parameters.*0.900"):
        choose(cands)


def _cfg() -> EncoderConfig:
    return EncoderConfig(
        frontend="logmel", n_mels=20, conv_layers=((16, 10, 5), (16, 3, 2), (16, 2, 2)),
        embed_dim=64, num_heads=4, ffn_dim=128, num_layers=2, pos_conv_kernel=8,
        pos_conv_groups=4, dropout=0.0, attention_dropout=0.0, projection_dropout=0.0,
    )  # fmt: skip


def test_the_supernet_starts_as_the_teacher_with_random_extra_layers():
    torch.manual_seed(0)
    teacher = HubertEncoder(_cfg())
    sup = supernet_encoder(teacher, 3, seed=1)
    assert sup.cfg == replace(teacher.cfg, num_layers=3)
    own, ref = sup.state_dict(), teacher.state_dict()
    for name, t in ref.items():
        torch.testing.assert_close(own[name], t, rtol=0, atol=0)
    extra = [n for n in own if n.startswith("encoder.transformer.layers.2.")]
    assert extra and all(n not in ref for n in extra)
    again = supernet_encoder(teacher, 3, seed=1).state_dict()
    assert all(torch.equal(again[n], own[n]) for n in extra)  # seeded
    assert supernet_encoder(teacher, None, seed=1).cfg == teacher.cfg


def test_untrained_subnets_are_the_teacher_leading_slices():
    """With zero steps in both stages the search's student is what distill cut before."""
    torch.manual_seed(0)
    teacher = HubertEncoder(_cfg())
    sub = Subnet(32, 2, 64, 2)
    extracted = Supernet(supernet_encoder(teacher, None, seed=1)).extract(sub)
    sliced = HubertEncoder(sub.config(teacher.cfg))
    init_from_teacher(sliced, teacher)
    for (n, a), (_, b) in zip(
        extracted.state_dict().items(), sliced.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), n


def test_the_loop_takes_the_supernet_budget_and_keeps_pretrain_masks(root):
    from hubert_ee.config import load_params

    p = load_params(root / "params.yaml")
    cfg = loop_config(p.pretrain, p.supernet, 7)
    assert (cfg.max_steps, cfg.lr, cfg.max_batch_seconds) == (
        7,
        p.supernet.lr,
        p.supernet.max_batch_seconds,
    )
    assert (cfg.mask_prob, cfg.mask_span) == (p.pretrain.mask_prob, p.pretrain.mask_span)
    assert cfg.warmup_steps == min(p.supernet.warmup_steps, 7)
    assert [s for _, s in STAGES] == ["largest", "uniform"]


def test_latencies_time_every_encoder_per_utterance_at_batch_1_and_batched():
    torch.manual_seed(0)
    small, big = (
        HubertEncoder(replace(_cfg(), num_layers=1)),
        HubertEncoder(replace(_cfg(), num_layers=2)),
    )
    waves = [torch.randn(3200 + 800 * i) for i in range(5)]
    t = latencies({"small": small, "big": big}, waves, batch=2, repeats=3, threads=1)
    assert set(t) == {"small", "big"}
    assert all(v["batch1_ms"] > 0 and v["batched_ms"] > 0 for v in t.values())
