"""Iteration-1 features: 13 Kaldi MFCC + Δ + ΔΔ at 100 Hz, as in fairseq's HuBERT recipe."""

from __future__ import annotations

import numpy as np
import torch
import torchaudio

WINDOW = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms


class MfccSource:
    """39-d MFCC. Dither is off (Kaldi's default dither=1 makes features irreproducible)."""

    name = "mfcc"
    identity = "kaldi-mfcc-13+d+dd-dither0"
    dim = 39
    frame_rate_hz = 16000 / HOP
    window = WINDOW
    hop = HOP

    def num_frames(self, num_samples: int) -> int:
        """Kaldi `snip_edges=True` framing."""
        return 0 if num_samples < WINDOW else 1 + (num_samples - WINDOW) // HOP

    @torch.inference_mode()
    def __call__(self, wave: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)).view(1, -1)
        mfcc = torchaudio.compliance.kaldi.mfcc(
            waveform=x, sample_frequency=16000, use_energy=False, dither=0.0
        )  # (T, 13)
        m = mfcc.transpose(0, 1)  # (13, T)
        d1 = torchaudio.functional.compute_deltas(m)
        d2 = torchaudio.functional.compute_deltas(d1)
        return torch.cat([m, d1, d2], dim=0).transpose(0, 1).contiguous().numpy()
