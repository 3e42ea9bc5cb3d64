import numpy as np
import pytest
import torch

from hubert_ee.data import augment


def _tone(freq, sr=16000, seconds=1.0):
    t = np.arange(int(sr * seconds)) / sr
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


@pytest.mark.parametrize("snr", [0.0, 5.0, 20.0])
def test_mix_at_snr_hits_the_requested_snr(snr):
    rng = np.random.default_rng(0)
    speech = _tone(440)
    noise = augment.pink_noise(rng, 8000)  # shorter: gets looped
    mixed = augment.mix_at_snr(speech, noise, snr)
    got = 10 * np.log10(augment.power(speech) / augment.power(mixed - speech))
    assert got == pytest.approx(snr, abs=1e-3)


def test_pink_noise_has_falling_spectrum():
    x = augment.pink_noise(np.random.default_rng(0), 2**16)
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    low = spec[(f > 100) & (f < 200)].mean()
    high = spec[(f > 3200) & (f < 6400)].mean()
    # 1/f: 32x higher frequency = 32x less power per bin (15 dB); allow slack.
    assert 10 * np.log10(low / high) == pytest.approx(15.05, abs=2.0)


def test_telephone_channel_passes_speech_band_and_cuts_the_rest():
    sr = 16000

    def gain(freq):
        x = _tone(freq)
        y = augment.telephone_channel(x, sr)
        return 10 * np.log10(augment.power(y[2000:-2000]) / augment.power(x[2000:-2000]))

    assert gain(1000) > -1.5
    assert gain(100) < -20
    assert gain(5000) < -30


def test_reverb_rir_decays_sixty_db_at_rt60():
    rir = augment.room_impulse_response(np.random.default_rng(0), 0.5, 16000)
    assert len(rir) == 8000 and rir[0] == 1.0
    e_start = np.mean(rir[1:400] ** 2)
    e_end = np.mean(rir[-400:] ** 2)
    assert 10 * np.log10(e_start / e_end) > 50


def test_reverberate_keeps_length_and_level():
    x = _tone(300)
    y = augment.reverberate(x, augment.room_impulse_response(np.random.default_rng(1), 0.6, 16000))
    assert len(y) == len(x)
    assert augment.power(y) == pytest.approx(augment.power(x), rel=1e-4)
    assert not np.allclose(x, y)


def test_mu_law_roundtrip_is_close_and_quantized():
    x = np.linspace(-1, 1, 10001)
    y = augment.mu_law_roundtrip(x)
    assert np.max(np.abs(x - y)) < 0.04
    assert len(np.unique(np.round(y, 9))) <= 256


# Training-time corruption (issue 14, item 2)

TRAIN = augment.TrainAugmentation()


def _speech(seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    x = sum(np.sin(2 * np.pi * f * t) for f in (150, 700, 2500, 5500)) + 0.01 * rng.standard_normal(
        len(t)
    )
    return x.astype(np.float32)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_scales_duration_by_one_over_the_factor(factor):
    x = _speech(2.0)
    y = augment.speed_perturb(x, factor)
    assert len(y) == pytest.approx(len(x) / factor, abs=2)
    assert augment.speed_perturb(x, 1.0) is x


def test_corrupt_is_a_pure_function_of_its_generator_and_keeps_the_level():
    x = _speech()
    a = augment.corrupt(x, np.random.default_rng([7, 0, 3]), TRAIN)
    b = augment.corrupt(x, np.random.default_rng([7, 0, 3]), TRAIN)
    c = augment.corrupt(x, np.random.default_rng([7, 1, 3]), TRAIN)
    assert np.array_equal(a, b) and not (len(a) == len(c) and np.array_equal(a, c))
    assert np.sqrt(augment.power(a)) == pytest.approx(np.sqrt(augment.power(x)), rel=1e-3)


def test_prob_zero_is_the_identity_and_telephone_only_removes_the_high_band():
    x = _speech()
    off = augment.TrainAugmentation(prob=0.0)
    assert augment.corrupt(x, np.random.default_rng(0), off) is x
    phone = augment.TrainAugmentation(
        speeds=(1.0,), noise_prob=0.0, reverb_prob=0.0, telephone_prob=1.0
    )
    y = augment.corrupt(x, np.random.default_rng(0), phone)
    spec = lambda s: np.abs(np.fft.rfft(s))  # noqa: E731
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    band = lambda s, lo, hi: spec(s)[(f > lo) & (f < hi)].sum()  # noqa: E731
    assert band(y, 5000, 6000) < 0.05 * band(x, 5000, 6000)  # 5.5 kHz gone (-26 dB)
    assert band(y, 600, 800) > 0.3 * band(x, 600, 800)  # 700 Hz kept


def test_babble_comes_from_the_callback():
    x = _speech()
    only_babble = augment.TrainAugmentation(
        speeds=(1.0,), noise_prob=1.0, noise_kinds=("babble",), snr_db=(0.0, 0.0),
        reverb_prob=0.0, telephone_prob=0.0,
    )  # fmt: skip
    calls = []

    def babble(n):
        calls.append(n)
        return _speech(n / 16000, seed=5)[:n] * 0 + np.sin(np.arange(n) * 0.3).astype(np.float32)

    y = augment.corrupt(x, np.random.default_rng(1), only_babble, babble)
    assert calls == [len(x)] and not np.allclose(y, x)


def test_augmented_dataset_draws_per_epoch_and_keeps_targets(tmp_path):
    import pandas as pd
    import soundfile as sf

    from hubert_ee.data.asr_data import ASRData, AugmentedASRData
    from hubert_ee.data.vocab import CharVocab

    rows = []
    for i in range(4):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, _speech(1.0, seed=i) * 0.1, 16000)
        rows.append({"id": f"u{i}", "path": str(path), "text": f"word {'abcd'[i]}", "num_samples": 16000,
                     "start": 0.0, "duration": 1.0})  # fmt: skip
    base = ASRData(pd.DataFrame(rows), CharVocab())
    data = AugmentedASRData(base, augment.TrainAugmentation(noise_kinds=("babble",)), seed=3)
    w0, t0 = data[2]
    assert torch.equal(t0, base[2][1]) and torch.equal(w0, data[2][0])  # same (seed, epoch, item)
    data.set_epoch(1)
    w1, _ = data[2]
    assert not (w0.shape == w1.shape and torch.equal(w0, w1))
