"""Frame-level phone labels from the manifests' phone alignments (for purity and PNMI)."""

from __future__ import annotations

import numpy as np

SILENCE = "sil"


def normalize_phone(symbol: str) -> str:
    """Fold espeak stress marks (' ,) into the phone; pauses (`_`, `_:`) become silence."""
    s = symbol.lstrip("',")
    return SILENCE if not s or s.startswith("_") else s


def frame_phones(
    phones: list[tuple[str, float, float]],
    num_frames: int,
    hop: int,
    window: int,
    sample_rate: int = 16000,
) -> list[str]:
    """The phone at the centre of each frame; frames outside every span are silence."""
    centers = (np.arange(num_frames) * hop + window / 2) / sample_rate
    starts = np.array([s for _, s, _ in phones], dtype=np.float64)
    ends = starts + np.array([d for _, _, d in phones], dtype=np.float64)
    idx = np.searchsorted(starts, centers, side="right") - 1
    out = []
    for c, i in zip(centers, idx, strict=True):
        out.append(normalize_phone(phones[i][0]) if i >= 0 and c < ends[i] else SILENCE)
    return out
