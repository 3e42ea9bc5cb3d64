"""Span masking for masked prediction (wav2vec 2.0 / HuBERT).

Each utterance of T valid frames gets int(p·T + u) span starts (u ~ U[0,1): stochastic
rounding), drawn without replacement from [0, T − span]; each start masks `span` frames.
With p = 0.08 and span = 10 about half of the frames end up masked (spans overlap).
"""

from __future__ import annotations

import torch


def span_mask(
    frame_lengths: torch.Tensor,
    num_frames: int,
    prob: float,
    span: int,
    generator: torch.Generator,
    min_spans: int = 2,
) -> torch.Tensor:
    """(batch, num_frames) bool, True = masked. Padded frames are never masked."""
    batch = len(frame_lengths)
    mask = torch.zeros(batch, num_frames, dtype=torch.bool)
    for b, t in enumerate(frame_lengths.tolist()):
        if t <= span:
            continue
        n = int(prob * t + torch.rand((), generator=generator).item())
        n = min(max(n, min_spans), t - span)
        starts = torch.randperm(t - span, generator=generator)[:n]
        idx = (starts[:, None] + torch.arange(span)[None, :]).reshape(-1)
        mask[b, idx] = True
    return mask
