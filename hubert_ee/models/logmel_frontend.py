"""Cheap front end for CPU-sized models: log-mel bands framed exactly like the CNN encoder
(400-sample window, 320-sample hop → the same 50 Hz frames), no parameters to learn.

Raw log-mel differs by channel: a telephone band limit leaves the top bands at the numerical
floor and noise lifts the bottom ones, so a model sees "which domain" before "which phone"
(DESIGN §5). `norm="utterance"` therefore floors each utterance `top_db` below its own peak
(torchaudio's AmplitudeToDB convention) and normalises every band to zero mean and unit
variance over the utterance's valid frames (per-utterance CMVN, as Kaldi/ESPnet front ends do).
The floor sits higher than AmplitudeToDB's usual 80 dB: a band that holds only leakage (above a
telephone line's 3.4 kHz) must stay flat at the floor, which CMVN maps to ≈ 0, instead of
keeping enough of its noise for CMVN to scale it up to look like speech.
"""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

_ABS_FLOOR = 1e-10  # power below this is digital silence
_STD_FLOOR = 0.1  # nats; a band that is all floor stays ≈ 0 instead of being blown up


class LogMelFrontend(nn.Module):
    def __init__(
        self, n_mels: int, norm: str = "utterance", top_db: float = 40.0, window: int = 400,
        hop: int = 320,
    ):  # fmt: skip
        super().__init__()
        if norm not in ("utterance", "none"):
            raise ValueError(f"log-mel norm must be utterance or none, got {norm!r}")
        self.window, self.hop, self.norm = window, hop, norm
        self.floor_nats = top_db / 10.0 * math.log(10.0)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=16000,
            n_fft=window,
            win_length=window,
            hop_length=hop,
            n_mels=n_mels,
            center=False,
            power=2.0,
        )
        self.folded = False

    def fold(self) -> None:
        """Inference form, equal to rounding: the power spectrum as re² + im² of a real FFT over
        framed audio, where torchaudio takes |X| (a complex abs, the slowest op of the front
        end) and squares it; and, without padding, statistics without masks (torch's
        `var_mean` over frames costs more than the rest of the normalisation). `train()` turns
        it off."""
        self.folded = True

    def train(self, mode: bool = True) -> LogMelFrontend:
        if mode:
            self.folded = False
        return super().train(mode)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.clamp(
            torch.div(lengths - self.window, self.hop, rounding_mode="floor") + 1, min=0
        )

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, samples) → (batch, frames, n_mels); `lengths` (samples) keeps padding out of
        the per-utterance statistics."""
        with torch.autocast(wave.device.type, enabled=False):
            if self.folded:
                x = self._mel_folded(wave.float())
            else:
                x = self.mel(wave.float()).transpose(1, 2)
            if self.norm == "none":
                return torch.log(x + 1e-6)
            x = torch.log(x.clamp_min(_ABS_FLOOR))
            if self.folded and lengths is None:
                return self._normalise_unpadded(x)
            return self._normalise(x, lengths)

    def _mel_folded(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) → (batch, frames, n_mels), as `self.mel` (center=False)."""
        frames = wave.unfold(-1, self.window, self.hop) * self.mel.spectrogram.window
        sq = torch.view_as_real(torch.fft.rfft(frames)).square()  # (batch, frames, bins, 2)
        return (sq[..., 0] + sq[..., 1]) @ self.mel.mel_scale.fb

    def _normalise_unpadded(self, x: torch.Tensor) -> torch.Tensor:
        """`_normalise` of a batch without padding, in one pass of statistics."""
        peak = x.amax(dim=(1, 2), keepdim=True)
        x = torch.maximum(x, peak - self.floor_nats)
        x = x - x.mean(1, keepdim=True)
        return x / x.square().mean(1, keepdim=True).sqrt().clamp_min(_STD_FLOOR)

    def _normalise(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        frames = x.shape[1]
        if lengths is None:
            valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        else:
            n = self.output_lengths(lengths.to(x.device))
            valid = torch.arange(frames, device=x.device)[None] < n[:, None]
        w = valid[..., None].to(x.dtype)
        peak = x.masked_fill(~valid[..., None], -math.inf).amax(dim=(1, 2), keepdim=True)
        x = torch.maximum(x, peak - self.floor_nats)
        count = w.sum(1, keepdim=True).clamp_min(1.0)
        mean = (x * w).sum(1, keepdim=True) / count
        var = ((x - mean) ** 2 * w).sum(1, keepdim=True) / count
        x = (x - mean) / var.sqrt().clamp_min(_STD_FLOOR)
        return x.masked_fill(~valid[..., None], 0.0)
