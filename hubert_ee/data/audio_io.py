"""Audio reading and writing through soundfile (torchaudio's I/O now needs torchcodec+FFmpeg)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf


def read_audio(
    path: str | Path, start_s: float = 0.0, duration_s: float | None = None
) -> tuple[np.ndarray, int]:
    """float32 samples shaped (frames, channels) and the file's sample rate."""
    info = sf.info(str(path))
    start = int(round(start_s * info.samplerate))
    frames = -1 if duration_s is None else int(round(duration_s * info.samplerate))
    data, sr = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    return data, sr


def read_mono_16k(
    path: str | Path, start_s: float = 0.0, duration_s: float | None = None
) -> np.ndarray:
    """The downstream view: mono float32 at 16 kHz (prepare has already repaired the rest)."""
    data, sr = read_audio(path, start_s, duration_s)
    x = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return resample(x, sr, 16000) if sr != 16000 else x


def resample(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Polyphase resampling with the exact rational ratio (e.g. 22050→16000 = 320/441)."""
    if orig_sr == new_sr:
        return x.astype(np.float32, copy=False)
    return resample_poly(x, int(new_sr), int(orig_sr)).astype(np.float32)


@lru_cache(maxsize=64)
def _lowpass(up: int, down: int, dtype: str) -> np.ndarray:
    """The anti-aliasing filter `scipy.signal.resample_poly` designs on every call (Kaiser
    window, β = 5, 10 taps per rate on each side): designed once per ratio and dtype, since on a
    few-second utterance the design costs as much as the filtering."""
    rate = max(up, down)
    from scipy import signal  # imported here: only stages that resample pay for it

    h = signal.firwin(2 * 10 * rate + 1, 1.0 / rate, window=("kaiser", 5.0)).astype(dtype)
    h.flags.writeable = False  # shared by every caller; scipy copies it before scaling
    return h


def resample_poly(x: np.ndarray, up: int, down: int, axis: int = 0) -> np.ndarray:
    """`scipy.signal.resample_poly(x, up, down, axis)` with the same samples, bit for bit
    (tested), and the filter design cached."""
    g = int(np.gcd(up, down))
    up, down = up // g, down // g
    if up == down == 1:
        return x.copy()
    kind = x.dtype if np.issubdtype(x.dtype, np.inexact) else np.dtype(np.float64)
    from scipy import signal

    return signal.resample_poly(x, up, down, axis=axis, window=_lowpass(up, down, kind.str))


def write_wav16(path: str | Path, x: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV; the bytes depend only on the samples (no timestamps in the header)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.wav")
    sf.write(str(tmp), np.clip(x, -1.0, 32767 / 32768), sample_rate, subtype="PCM_16", format="WAV")
    tmp.replace(path)
