"""Masking, batching, label alignment and the loss, against hand-checkable cases."""

import math

import numpy as np
import pytest
import torch

from hubert_ee.data.batching import bucket_batches, padding_fraction
from hubert_ee.models import config
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.pretrain_head import HubertPretrainModel
from hubert_ee.train.masking import span_mask
from hubert_ee.train.optim import lr_lambda
from hubert_ee.train.pretrain_data import LabelLengthError, label_indices


def test_span_mask_covers_about_half_with_p008_span10():
    g = torch.Generator().manual_seed(0)
    m = span_mask(torch.tensor([500] * 200), 500, 0.08, 10, g)
    frac = m.float().mean().item()
    # Expected coverage with 40 starts of 10 frames over 491 start positions (no replacement).
    assert 0.5 < frac < 0.6


def test_span_mask_respects_padding_and_is_made_of_spans():
    g = torch.Generator().manual_seed(1)
    m = span_mask(torch.tensor([100, 37, 5]), 100, 0.08, 10, g)
    assert not m[1, 37:].any() and not m[2].any()  # padding and too-short utterances untouched
    row = m[0].int().tolist()
    runs = [len(r) for r in "".join(map(str, row)).split("0") if r]
    assert all(r >= 10 for r in runs)  # every masked run is at least one whole span


def test_span_mask_is_seeded():
    a = span_mask(torch.tensor([80, 60]), 80, 0.08, 10, torch.Generator().manual_seed(5))
    b = span_mask(torch.tensor([80, 60]), 80, 0.08, 10, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_bucket_batches_cover_everything_once_within_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(16000, 96000, 300)
    batches = bucket_batches(lengths, 400_000, seed=0, epoch=0)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(300))
    assert all(lengths[b].max() * len(b) <= 400_000 for b in batches)
    assert padding_fraction(lengths, batches) < 0.05  # bucketing keeps padding small
    assert bucket_batches(lengths, 400_000, 0, 0) == batches
    assert bucket_batches(lengths, 400_000, 0, 1) != batches
    with pytest.raises(ValueError, match="does not fit"):
        bucket_batches(np.array([500_000]), 400_000, 0, 0)


def test_padding_fraction_by_hand():
    lengths = np.array([10, 5, 8])
    assert padding_fraction(lengths, [[0, 1], [2]]) == pytest.approx(1 - 23 / 28)


def test_lr_schedule_warms_up_then_decays_to_zero():
    f = lr_lambda(10, 110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5) and f(110) == 0.0


def test_label_indices_for_100hz_and_50hz_labels():
    cfg = config.base()
    for n in (16000, 16160, 16479, 40000):
        mfcc_labels = 1 + (n - 400) // 160
        idx = label_indices(n, mfcc_labels, 160, 400, cfg, "u")
        assert len(idx) == cfg.num_frames(n) and idx[-1] < mfcc_labels
        assert (np.diff(idx) == 2).all()  # every other 100 Hz label
        idx50 = label_indices(n, cfg.num_frames(n), 320, 400, cfg, "u")
        assert (idx50 == np.arange(cfg.num_frames(n))).all()


def test_label_length_mismatch_names_the_utterance():
    with pytest.raises(LabelLengthError, match="utterance spk1-007: 97 labels for 16000 samples"):
        label_indices(16000, 97, 160, 400, config.base(), "spk1-007")


def test_loss_is_cross_entropy_of_cosine_logits_over_masked_frames():
    torch.manual_seed(0)
    cfg = config.tiny()
    model = HubertPretrainModel(HubertEncoder(cfg).eval(), num_classes=7, final_dim=16).eval()
    wave = torch.randn(2, 8000)
    lengths = torch.tensor([8000, 6000])
    t = cfg.num_frames(8000)
    labels = torch.randint(0, 7, (2, t))
    mask = torch.zeros(2, t, dtype=torch.bool)
    mask[0, 3:13] = True
    mask[1, 0:10] = True
    out = model(wave, lengths, labels, mask)
    # Recompute by hand from the pieces.
    enc = model.encoder
    x, valid, _ = enc.features(wave, lengths)
    x = torch.where(mask[..., None], enc.mask_embedding, x)
    h = enc.layers(x, valid)[-1][mask]
    p = torch.nn.functional.normalize(model.final_proj(h), dim=-1)
    e = torch.nn.functional.normalize(model.label_embeddings, dim=-1)
    logits = p @ e.T / 0.1
    want = -torch.log_softmax(logits, -1)[torch.arange(20), labels[mask]].mean()
    assert out["loss"].item() == pytest.approx(want.item(), rel=1e-5)
    assert out["masked_frames"].item() == 20
    assert out["loss"].item() < math.log(7) * 10  # finite, sane scale


def test_iteration_two_starts_from_the_previous_encoder_only_when_asked(smoke_params, tmp_path):
    from hubert_ee.models.checkpoint import save_encoder
    from hubert_ee.train.pretrain import initial_encoder

    torch.manual_seed(0)
    previous = HubertEncoder(smoke_params.model.encoder_config())
    path = tmp_path / "iter1.safetensors"
    save_encoder(previous, path)
    want = previous.state_dict()

    def same(enc: HubertEncoder) -> bool:
        return all(torch.equal(v, want[k]) for k, v in enc.state_dict().items())

    assert same(initial_encoder(smoke_params.model, 2, path))
    assert not same(initial_encoder(smoke_params.model, 2, None))  # from scratch (the paper)
    assert not same(
        initial_encoder(smoke_params.model, 1, path)
    )  # iteration 1: init_checkpoint only
    other = smoke_params.model.model_copy(update={"overrides": {**smoke_params.model.overrides,
                                                                 "num_layers": 3}})  # fmt: skip
    with pytest.raises(ValueError, match="params ask for"):
        initial_encoder(other, 2, path)
