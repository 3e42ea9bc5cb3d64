"""Audio reading and writing through soundfile (torchaudio's I/O now needs torchcodec+FFmpeg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal


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
    g = np.gcd(int(orig_sr), int(new_sr))
    return signal.resample_poly(x, new_sr // g, orig_sr // g, axis=0).astype(np.float32)


def write_wav16(path: str | Path, x: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV; the bytes depend only on the samples (no timestamps in the header)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.wav")
    sf.write(str(tmp), np.clip(x, -1.0, 32767 / 32768), sample_rate, subtype="PCM_16", format="WAV")
    tmp.replace(path)
