"""LightHuBERT's supernet and its distillation loss on small tensors (issue 15, item 1)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from hubert_ee.models.config import EncoderConfig
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.supernet import (
    SearchSpace,
    Subnet,
    Supernet,
    parameter_count,
    validity_errors,
)
from hubert_ee.models.supernet_head import SupernetDistillModel
from hubert_ee.models.supernet_loss import (
    instance_norm,
    layer_average_target,
    masked_l1,
    top_k_layers,
)

SPACE = SearchSpace(embed_dims=(32, 48, 64), heads=(2, 4), ffn_ratios=(1.0, 2.0), depths=(1, 2, 3))


def _cfg(frontend: str, layer_norm_first: bool) -> EncoderConfig:
    conv = ((16, 10, 5), (16, 3, 2), (16, 2, 2))
    return EncoderConfig(
        frontend=frontend, n_mels=20, conv_layers=conv, embed_dim=64, num_heads=4, ffn_dim=128,
        num_layers=3, pos_conv_kernel=8, pos_conv_groups=4, layer_norm_first=layer_norm_first,
        dropout=0.0, attention_dropout=0.0, projection_dropout=0.0, layer_drop=0.0,
    )  # fmt: skip


@pytest.mark.parametrize("frontend,pre_ln", [("logmel", False), ("cnn", True)])
def test_every_subnet_run_in_the_supernet_equals_the_encoder_extracted_from_it(frontend, pre_ln):
    torch.manual_seed(0)
    supernet = Supernet(HubertEncoder(_cfg(frontend, pre_ln)).eval())
    wave, lengths = torch.randn(2, 6400), torch.tensor([6400, 4000])
    subnets = SPACE.all(supernet.encoder.cfg)
    assert len(subnets) == 3 * 2 * 2 * 3  # 32, 48, 64 are all divisible by 2, 4 and the groups
    some = subnets[::5]  # a fifth of the grid, every width, head count, FFN size and depth
    assert [len({getattr(s, f) for s in some}) for f in Subnet.__dataclass_fields__] == [3, 2, 5, 3]
    for sub in some:
        inside = supernet.call(sub, "hidden_states", wave, lengths)
        plain = supernet.extract(sub)
        assert plain.cfg.embed_dim == sub.embed_dim and len(plain.encoder.transformer.layers) == (
            sub.num_layers
        )
        alone = plain.hidden_states(wave, lengths)
        assert torch.equal(inside[1], alone[1])
        for a, b in zip(inside[0], alone[0], strict=True):
            assert a.shape[-1] == sub.embed_dim
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        assert sum(p.numel() for p in plain.parameters()) == parameter_count(
            sub, supernet.encoder.cfg
        )


def test_the_largest_subnet_is_the_supernet_itself():
    torch.manual_seed(1)
    enc = HubertEncoder(_cfg("logmel", False)).eval()
    sub = SPACE.largest()
    assert sub == Subnet(64, 4, 128, 3)
    wave = torch.randn(1, 4800)
    torch.testing.assert_close(
        Supernet(enc).call(sub, "forward", wave)[0], enc(wave)[0], rtol=0, atol=1e-6
    )


def test_a_subnet_gradient_reaches_only_the_weights_it_uses():
    torch.manual_seed(2)
    enc = HubertEncoder(_cfg("logmel", False))
    sub = Subnet(embed_dim=32, num_heads=2, ffn_dim=64, num_layers=2)
    out, _ = Supernet(enc).call(sub, "forward", torch.randn(2, 4800))
    out.pow(2).mean().backward()
    layers = enc.encoder.transformer.layers
    q = layers[0].attention.q_proj.weight.grad
    assert q[:32, :32].abs().sum() > 0 and q[32:].abs().sum() == 0 and q[:, 32:].abs().sum() == 0
    ffn = layers[1].feed_forward.intermediate_dense.weight.grad
    assert ffn[:64, :32].abs().sum() > 0 and ffn[64:].abs().sum() == 0
    assert layers[2].attention.q_proj.weight.grad is None  # depth 2: layer 3 never ran
    proj = enc.encoder.feature_projection.projection.weight.grad
    assert proj[:32].abs().sum() > 0 and proj[32:].abs().sum() == 0


def test_every_sampled_subnet_is_valid_and_invalid_ones_say_why():
    cfg = _cfg("logmel", False)
    gen = torch.Generator().manual_seed(0)
    drawn = {SPACE.sample(cfg, gen) for _ in range(300)}
    assert drawn == set(SPACE.all(cfg))  # uniform over the valid ones: all of them show up
    assert all(not validity_errors(s, cfg) for s in drawn)
    wide = SearchSpace(embed_dims=(30, 64, 96), heads=(3, 4), ffn_ratios=(2.0,), depths=(2,))
    # 30: not divisible by the 4 positional conv groups; 96: wider than the supernet; 64/3
    assert wide.all(cfg) == [Subnet(64, 4, 128, 2)]
    errors = validity_errors(Subnet(36, 5, 256, 4), cfg)
    assert errors == [
        "ffn_dim 256 outside 1..128",
        "num_layers 4 outside 1..3",
        "num_heads 5 does not divide embed_dim 36",
    ]
    with pytest.raises(ValueError, match="not a subnet of the supernet: embed_dim 96 outside"):
        Supernet(HubertEncoder(cfg)).call(Subnet(96, 4, 128, 2), "forward", torch.randn(1, 4800))


def test_instance_norm_uses_only_valid_frames():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])  # frame 3 is padding
    valid = torch.tensor([[True, True, False]])
    y = instance_norm(x, valid, eps=0.0)
    assert y.squeeze().tolist() == [-1.0, 1.0, 0.0]  # mean 2, std 1 over the two valid frames


def test_the_target_averages_the_chosen_normalised_layers():
    a = torch.tensor([[[0.0], [2.0]]])  # normalised: -1, 1
    b = torch.tensor([[[10.0], [0.0]]])  # normalised: 1, -1
    c = torch.tensor([[[5.0], [6.0]]])  # normalised: -1, 1
    assert top_k_layers(2, 3) == (2, 3) and top_k_layers(3, 3) == (1, 2, 3)
    t = layer_average_target([a, b, c], None, top_k_layers(2, 3))
    torch.testing.assert_close(t.squeeze(), torch.tensor([0.0, 0.0]), atol=1e-4, rtol=0)
    for which, expect in (((3,), [-1.0, 1.0]), ((1, 3), [-1.0, 1.0]), ((1, 2), [0.0, 0.0])):
        torch.testing.assert_close(
            layer_average_target([a, b, c], None, which).squeeze(), torch.tensor(expect),
            atol=1e-4, rtol=0,
        )  # fmt: skip
    for bad in ((4,), (0, 1), ()):
        with pytest.raises(ValueError, match="must be a non-empty subset of 1..3"):
            layer_average_target([a, b, c], None, bad)


def test_masked_l1_sums_over_dims_and_averages_over_masked_frames():
    pred = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [5.0, 5.0]]])
    target = torch.tensor([[[0.0, 0.0], [9.0, 9.0], [4.0, 7.0]]])
    mask = torch.tensor([[True, False, True]])
    assert masked_l1(pred, target, mask).item() == pytest.approx((3.0 + 3.0) / 2)
    zero = masked_l1(pred.requires_grad_(), target, torch.zeros_like(mask))
    assert zero.item() == 0.0 and zero.requires_grad


def _distill_model(sample: str) -> SupernetDistillModel:
    torch.manual_seed(3)
    teacher = HubertEncoder(replace(_cfg("logmel", False), embed_dim=48, num_heads=4, ffn_dim=96))
    return SupernetDistillModel(
        HubertEncoder(_cfg("logmel", False)), teacher, SPACE, top_k_layers(2, 3), sample
    )


def test_the_distillation_loss_is_the_extracted_subnet_predicting_the_teacher_target():
    model = _distill_model("uniform").eval()
    wave, lengths = torch.randn(2, 6400), torch.tensor([6400, 4800])
    mask = torch.zeros(2, 19, dtype=torch.bool)
    mask[:, 3:9] = True
    mask[1, 14:] = True  # beyond utterance 2's 14 valid frames: padding, never scored
    sub = Subnet(32, 2, 64, 2)
    out = model(wave, lengths, None, mask, subnet=sub)
    # by hand: the teacher's last 2 layers normalised and averaged, the extracted subnet with
    # the sliced mask embedding and head, L1 summed over dims, mean over the 12 masked frames
    layers, fl = model.teacher.hidden_states(wave, lengths)
    valid = torch.arange(19)[None] < fl[:, None]
    target = torch.stack([instance_norm(h, valid) for h in layers[-2:]]).mean(0)
    plain = model.supernet.extract(sub).eval()
    x, v, _ = plain.features(wave, lengths)
    x = torch.where((mask & v)[..., None], plain.mask_embedding, x)
    pred = plain.layers(x, v)[-1] @ model.head.weight[:, :32].T + model.head.bias
    scored = mask & valid
    assert int(out["masked_frames"]) == 12 == int(scored.sum())
    expect = (pred - target).abs().sum(-1)[scored].mean()
    torch.testing.assert_close(out["loss"], expect, rtol=1e-5, atol=1e-5)
    cosine = torch.nn.functional.cosine_similarity(pred[scored], target[scored], dim=-1).mean()
    torch.testing.assert_close(out["masked_acc"], cosine, rtol=1e-5, atol=1e-5)  # the acc slot


def test_stage_1_trains_the_largest_stage_2_draws_from_the_loop_generator():
    assert _distill_model("largest").choose(torch.Generator()) == SPACE.largest()
    model = _distill_model("uniform")
    draws = [model.choose(torch.Generator().manual_seed(s)) for s in range(40)]
    assert draws == [model.choose(torch.Generator().manual_seed(s)) for s in range(40)]
    assert len(set(draws)) > 10
    with pytest.raises(ValueError, match="sample must be one of"):
        _distill_model("sandwich")


def test_a_few_updates_on_one_batch_lower_the_loss_of_every_subnet_they_train():
    model = _distill_model("uniform").train()
    params = [p for p in model.parameters() if p.requires_grad]
    assert not any(p is q for p in params for q in model.teacher.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    wave, lengths = torch.randn(2, 6400), torch.tensor([6400, 6400])
    mask = torch.zeros(2, 19, dtype=torch.bool)
    mask[:, 2:12] = True
    small, big = Subnet(32, 2, 32, 1), SPACE.largest()

    def loss(sub):
        with torch.no_grad():
            return float(model.eval()(wave, lengths, None, mask, subnet=sub)["loss"])

    before = (loss(small), loss(big))
    teacher_before = [p.clone() for p in model.teacher.parameters()]
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        model.train()
        sub = small if torch.rand((), generator=gen) < 0.5 else big
        opt.zero_grad()
        model(wave, lengths, None, mask, subnet=sub)["loss"].backward()
        opt.step()
    after = (loss(small), loss(big))
    assert after[0] < 0.8 * before[0] and after[1] < 0.8 * before[1]
    assert all(
        torch.equal(a, b) for a, b in zip(teacher_before, model.teacher.parameters(), strict=True)
    )
