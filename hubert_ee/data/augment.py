"""Channel and noise augmentations that make the synthetic domains acoustically distinct, and
the same chain drawn per utterance at training time (`TrainAugmentation`, `corrupt`).

Order follows the physical chain: room (reverb) → additive noise at the microphone →
transmission channel (telephone band, 8 kHz, mu-law), so a telephone domain also band-limits
its noise the way a real phone line does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from hubert_ee.data.audio_io import resample_poly


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise scaled so that 10·log10(P_speech / P_noise) = snr_db."""
    noise = fit_length(noise, len(speech))
    p_s, p_n = power(speech), power(noise)
    if p_n == 0.0 or p_s == 0.0:
        return speech.copy()
    gain = np.sqrt(p_s / (p_n * 10.0 ** (snr_db / 10.0)))
    return (speech + gain * noise).astype(np.float32)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Loop or cut `x` to exactly n samples."""
    if len(x) == 0:
        return np.zeros(n, np.float32)
    reps = int(np.ceil(n / len(x)))
    return np.tile(x, reps)[:n]


def white_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """1/f power spectrum, made by shaping white noise in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(f), n)
    return (pink / (np.std(pink) + 1e-12)).astype(np.float32)


def room_impulse_response(rng: np.random.Generator, rt60_s: float, sample_rate: int) -> np.ndarray:
    """Direct path + exponentially decaying diffuse tail (-60 dB after rt60_s)."""
    n = max(int(rt60_s * sample_rate), 2)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.907755 * t / rt60_s)  # ln(1000) = 6.9078
    tail[0] = 0.0
    tail *= 0.5 / (np.sqrt(np.sum(tail**2)) + 1e-12)
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve and keep the original length (so phone alignments stay valid)."""
    from scipy import signal  # imported on use: a stage that never augments skips it

    y = signal.fftconvolve(x, rir)[: len(x)]
    return (y * np.sqrt(power(x) / max(power(y), 1e-20))).astype(np.float32)


def telephone_channel(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """300–3400 Hz band-pass, 8 kHz resampling round trip, 8-bit mu-law quantization."""
    from scipy import signal

    sos = signal.butter(6, [300, 3400], btype="bandpass", fs=sample_rate, output="sos")
    y = signal.sosfiltfilt(sos, x)
    if sample_rate != 8000:
        g = np.gcd(sample_rate, 8000)
        y8 = resample_poly(y, 8000 // g, sample_rate // g)
        peak = max(float(np.max(np.abs(y8))), 1e-9)
        y8 = mu_law_roundtrip(y8 / peak) * peak
        y = resample_poly(y8, sample_rate // g, 8000 // g)[: len(x)]
    return y.astype(np.float32)


def mu_law_roundtrip(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """G.711-style companding to 8 bits and back; x in [-1, 1]."""
    x = np.clip(x, -1.0, 1.0)
    enc = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.round((enc + 1) / 2 * mu) / mu * 2 - 1
    return np.sign(q) * ((1 + mu) ** np.abs(q) - 1) / mu


def normalize_rms(
    x: np.ndarray, target_dbfs: float = -23.0, peak_limit: float = 0.99
) -> np.ndarray:
    """Scale to a fixed RMS level, then back off if that would clip."""
    rms = np.sqrt(power(x))
    if rms == 0.0:
        return x.astype(np.float32)
    y = x * (10 ** (target_dbfs / 20) / rms)
    peak = float(np.max(np.abs(y)))
    if peak > peak_limit:
        y *= peak_limit / peak
    return y.astype(np.float32)


# Training-time corruption (issue 14): a teacher fine-tuned on clean read speech never hears a
# noisy 8 kHz line; the same chain as the synthetic domains, drawn per utterance and epoch.


@dataclass(frozen=True)
class TrainAugmentation:
    """What to draw for each training utterance; every part is applied with its own probability
    after the utterance as a whole was picked (`prob`)."""

    prob: float = 1.0
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)  # speed perturbation (Ko et al. 2015)
    noise_prob: float = 0.5
    noise_kinds: tuple[str, ...] = ("white", "pink", "babble")
    snr_db: tuple[float, float] = (5.0, 20.0)
    reverb_prob: float = 0.3
    rt60_s: tuple[float, float] = (0.2, 0.8)
    telephone_prob: float = 0.5  # 300–3400 Hz, 8 kHz, mu-law


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (pitch moves with it), as Kaldi's and torchaudio's speed
    perturbation do: resample by 1/factor and keep the sample rate."""
    if factor == 1.0:
        return x
    ratio = Fraction(factor).limit_denominator(100)
    return resample_poly(x, ratio.denominator, ratio.numerator).astype(np.float32)


def corrupt(
    x: np.ndarray,
    rng: np.random.Generator,
    aug: TrainAugmentation,
    babble: Callable[[int], np.ndarray] | None = None,
    sample_rate: int = 16000,
) -> np.ndarray:
    """One draw of the training chain: speed → room → noise → channel, at the input's level.
    `babble(n)` gives n samples of other talkers (the training set's own utterances)."""
    if rng.random() >= aug.prob:
        return x
    level = np.sqrt(power(x))
    y = speed_perturb(x, float(aug.speeds[rng.integers(len(aug.speeds))]))
    if rng.random() < aug.reverb_prob:
        y = reverberate(y, room_impulse_response(rng, float(rng.uniform(*aug.rt60_s)), sample_rate))
    if rng.random() < aug.noise_prob:
        kind = aug.noise_kinds[rng.integers(len(aug.noise_kinds))]
        if kind == "babble" and babble is not None:
            noise = babble(len(y))
        elif kind == "pink":
            noise = pink_noise(rng, len(y))
        else:
            noise = white_noise(rng, len(y))
        y = mix_at_snr(y, noise, float(rng.uniform(*aug.snr_db)))
    if rng.random() < aug.telephone_prob:
        y = telephone_channel(y, sample_rate)
    out_level = np.sqrt(power(y))
    return (y * (level / out_level) if out_level > 0 else y).astype(np.float32)
