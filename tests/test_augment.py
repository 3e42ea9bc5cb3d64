import numpy as np
import pytest

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
