"""Small corpora written by the tests: real layouts, real audio files, deliberate breakage."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float, sr: int = 16000, freq: float = 220.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(
        int(freq)
    ).standard_normal(len(t))
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write(path: Path, x: np.ndarray, sr: int = 16000, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, **kw)
    return path


# (id, file, split, domain, text, expected outcome)
BROKEN_CASES = [
    (
        "rate8k",
        "rate8k.wav",
        "train",
        "a",
        "eight kilohertz",
        "repaired: resampled 8000 Hz to 16000 Hz",
    ),
    (
        "stereo",
        "stereo.wav",
        "train",
        "a",
        "two channels",
        "repaired: downmixed 2 channels to mono",
    ),
    ("shouty", "shouty.wav", "train", "a", "Hello, World!", "repaired: transcript lower-cased"),
    ("nan", "nan.wav", "train", "a", "not a number", "rejected: non-finite samples"),
    ("empty", "empty.wav", "train", "a", "nothing", "rejected: empty audio"),
    ("corrupt", "corrupt.wav", "train", "b", "garbage bytes", "rejected: unreadable audio"),
    ("short", "short.wav", "train", "b", "too short", "rejected: too short"),
    ("long", "long.wav", "train", "b", "far too long", "rejected: too long"),
    ("missing", "missing.wav", "train", "b", "not there", "rejected: missing file"),
    ("notext", "notext.wav", "dev", "c", "", "rejected: empty transcript"),
    ("oov", "oov.wav", "dev", "c", "café 123", "rejected: out-of-vocabulary characters"),
    ("good-dup", "dup.wav", "test", "c", "first copy", "accepted"),
    ("good-dup", "dup2.wav", "test", "c", "second copy", "rejected: duplicate id"),
    ("unl-notext", "unl.wav", "unlabeled", "a", "", "accepted"),
]


def write_broken_corpus(root: Path) -> Path:
    """A CSV manifest over audio that is broken in every way DESIGN §3.3 lists, plus one good
    utterance per split and domain. Returns the manifest path."""
    audio = root / "audio"
    write(audio / "rate8k.wav", tone(1.0, sr=8000), sr=8000)
    write(audio / "stereo.wav", tone(1.0, channels=2))
    write(audio / "shouty.wav", tone(1.0, freq=300))
    nan = tone(1.0).astype(np.float32)
    nan[100] = np.nan
    write(audio / "nan.wav", nan, subtype="FLOAT")
    write(audio / "empty.wav", np.zeros(0))
    (audio / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    write(audio / "short.wav", tone(0.006))
    write(audio / "long.wav", tone(25.0))
    for name in ("notext", "oov", "dup", "dup2", "unl"):
        write(audio / f"{name}.wav", tone(1.0, freq=400))
    rows = [(i, f"audio/{f}", s, d, t) for i, f, s, d, t, _ in BROKEN_CASES]
    for split in ("train", "dev", "test"):
        for dom in ("a", "b", "c"):
            f = write(audio / f"good-{split}-{dom}.wav", tone(1.2, freq=500))
            rows.append(
                (f"good-{split}-{dom}", f"audio/{f.name}", split, dom, "a good clean sentence")
            )
    manifest = root / "corpus.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path", "split", "domain", "text"])
        w.writerows(rows)
    return manifest
