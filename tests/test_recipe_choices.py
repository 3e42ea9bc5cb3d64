"""Decisions of the fine-tuning recipe: the dev lr choice, the low-label subset, the saved
mask embedding, and the normalised log-mel front end."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest
import torch

from hubert_ee.data.asr_data import ASRData, subset_minutes
from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.checkpoint import load_encoder, save_encoder
from hubert_ee.models.config import EncoderConfig, tiny
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.logmel_frontend import LogMelFrontend
from hubert_ee.train.lr_choice import pick_lr, probe_result


def test_lowest_dev_wer_wins_then_cer_then_the_smaller_lr():
    probes = [
        {"lr": 3e-3, "dev_wer": 0.5, "dev_cer": 0.2},
        {"lr": 1e-3, "dev_wer": 0.4, "dev_cer": 0.3},
        {"lr": 5e-4, "dev_wer": 0.4, "dev_cer": 0.25},
    ]
    assert pick_lr(probes) == 5e-4
    tie = [
        {"lr": 2e-3, "dev_wer": 1.0, "dev_cer": 1.0},
        {"lr": 1e-3, "dev_wer": 1.0, "dev_cer": 1.0},
    ]
    assert pick_lr(tie) == 1e-3
    with pytest.raises(ValueError, match="no lr probes"):
        pick_lr([])


def test_a_probe_is_scored_on_its_own_steps_even_after_the_run_went_on():
    evals = [
        {"step": 50, "wer": 0.9, "cer": 0.5},
        {"step": 100, "wer": 0.8, "cer": 0.4},
        {"step": 300, "wer": 0.3, "cer": 0.1},  # the chosen run continued past the probe
    ]
    assert probe_result(1e-3, evals, 100) == {"lr": 1e-3, "dev_wer": 0.8, "dev_cer": 0.4}
    with pytest.raises(ValueError, match="no dev evaluation"):
        probe_result(1e-3, evals[2:], 100)


def _data(seconds: list[float]) -> ASRData:
    rows = pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(len(seconds))],
            "num_samples": [int(s * 16000) for s in seconds],
            "text": ["a b"] * len(seconds),
        }
    )
    return ASRData(rows, CharVocab())


def test_low_label_subset_has_at_least_the_minutes_and_is_seeded():
    data = _data([5.0] * 60)  # 5 min
    few = subset_minutes(data, 1.0, seed=3)
    secs = few.lengths().sum() / 16000
    assert 60 <= secs < 65  # whole utterances: at most one over
    assert list(few.rows["id"]) == list(subset_minutes(data, 1.0, seed=3).rows["id"])
    assert list(few.rows["id"]) != list(subset_minutes(data, 1.0, seed=4).rows["id"])
    assert len(subset_minutes(data, 99.0, seed=0)) == 60  # less than asked: all of it


def test_mask_embedding_is_saved_with_the_encoder(tmp_path):
    enc = HubertEncoder(tiny())
    with torch.no_grad():
        enc.mask_embedding.fill_(0.25)
    save_encoder(enc, tmp_path / "e.safetensors")
    again = load_encoder(tmp_path / "e.safetensors")
    assert torch.equal(again.mask_embedding, enc.mask_embedding)


def test_old_checkpoints_keep_their_unnormalised_front_end():
    d = tiny().to_dict()
    del d["logmel_norm"]
    assert EncoderConfig.from_dict(d).logmel_norm == "none"
    assert tiny().logmel_norm == "utterance"


def test_logmel_bands_are_normalised_per_utterance_over_valid_frames_only():
    fe = LogMelFrontend(20)
    g = torch.Generator().manual_seed(0)
    loud = torch.randn(16000, generator=g)
    quiet = 0.01 * torch.randn(8000, generator=g)
    wave = torch.zeros(2, 16000)
    wave[0], wave[1, :8000] = loud, quiet
    out = fe(wave, torch.tensor([16000, 8000]))
    alone = fe(quiet[None], torch.tensor([8000]))
    n = int(fe.output_lengths(torch.tensor(8000)))
    assert torch.allclose(out[1, :n], alone[0], atol=1e-4)  # padding changes nothing
    assert torch.all(out[1, n:] == 0)
    assert out[0].mean(0).abs().max() < 1e-4
    assert torch.allclose(out[0].std(0, unbiased=False), torch.ones(20), atol=1e-3)
    # the gain of the channel is gone: a 100x quieter copy gives the same features
    assert torch.allclose(fe(loud[None] * 0.01), fe(loud[None]), atol=1e-3)


def test_logmel_floor_is_relative_to_the_utterance_peak():
    fe = LogMelFrontend(20, top_db=80.0)
    wave = torch.zeros(1, 16000)
    wave[0, :8000] = torch.randn(8000)  # second half digital silence
    raw = torch.log(fe.mel(wave).transpose(1, 2).clamp_min(1e-10))
    floor = raw.max() - 80.0 / 10 * torch.log(torch.tensor(10.0))
    out = fe(wave)
    silent = out[0, -5:]  # frames of pure silence sit at the floor, i.e. one value per band
    assert torch.allclose(silent, silent[0:1].expand_as(silent))
    assert raw.min() < floor  # the floor did act


def test_logmel_top_db_reaches_the_front_end_and_old_checkpoints_keep_80():
    enc = HubertEncoder(replace(tiny(), logmel_top_db=40.0))
    assert enc.feature_extractor.floor_nats == pytest.approx(40.0 / 10 * math.log(10.0))
    d = tiny().to_dict()
    del d["logmel_top_db"]
    assert EncoderConfig.from_dict(d).logmel_top_db == 80.0
    with pytest.raises(ValueError, match="logmel_top_db"):
        replace(tiny(), logmel_top_db=0.0)


def test_a_band_below_the_floor_normalises_to_zero_not_to_noise():
    """The telephone line leaves the bands above 4 kHz 60-80 dB under the peak: an 80 dB
    floor lets per-band CMVN blow that leakage up to unit variance, a 40 dB one flattens it."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * math.pi * 500 * t)  # all the energy at 500 Hz
    hiss = 10 ** (-65 / 20) * torch.randn(16000, generator=g)  # 65 dB down, everywhere
    wave = (tone + hiss)[None]
    top = slice(-10, None)  # the top mel bands: only the hiss
    deep = LogMelFrontend(40, top_db=80.0)(wave)[0, :, top]
    floored = LogMelFrontend(40, top_db=40.0)(wave)[0, :, top]
    assert deep.std(0).min() > 0.9  # noise made to look like speech energy
    assert floored.abs().max() < 1e-5
