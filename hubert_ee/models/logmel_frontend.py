"""Cheap front end for CPU-sized models: log-mel bands framed exactly like the CNN encoder
(400-sample window, 320-sample hop → the same 50 Hz frames), no parameters to learn."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn


class LogMelFrontend(nn.Module):
    def __init__(self, n_mels: int, window: int = 400, hop: int = 320):
        super().__init__()
        self.window, self.hop = window, hop
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=16000,
            n_fft=window,
            win_length=window,
            hop_length=hop,
            n_mels=n_mels,
            center=False,
            power=2.0,
        )

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.clamp(
            torch.div(lengths - self.window, self.hop, rounding_mode="floor") + 1, min=0
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) → (batch, frames, n_mels)."""
        with torch.autocast(wave.device.type, enabled=False):
            x = self.mel(wave.float())
        return torch.log(x + 1e-6).transpose(1, 2)
