"""Per-utterance cepstral mean and variance normalisation (CMVN), as Kaldi and ESPnet apply it.

On a multi-domain corpus the raw features carry the channel: clustered as they are, the
pseudo-labels say which domain an utterance came from (DESIGN §4). Normalising each utterance's
frames to zero mean and unit variance per dimension removes that constant offset and scale.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-5


def cmvn(x: np.ndarray) -> np.ndarray:
    """(frames, dims) → each dimension at mean 0 and standard deviation 1 over the utterance
    (a constant dimension becomes 0)."""
    x = np.asarray(x, dtype=np.float32)
    mean = x.mean(axis=0, keepdims=True)
    std = x.std(axis=0, keepdims=True)
    return ((x - mean) / np.maximum(std, EPS)).astype(np.float32)
