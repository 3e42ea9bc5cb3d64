"""CNN feature encoder over the raw waveform (wav2vec 2.0 / HuBERT), 320x downsampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hubert_ee.models.config import EncoderConfig


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over channels of a (batch, channels, time) tensor (Large's `layer_norm` mode)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(-2, -1)).transpose(-2, -1)


class ConvBlock(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, bias: bool, norm: nn.Module | None
    ):
        super().__init__()
        self.kernel_size, self.stride = kernel, stride
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=bias)
        self.layer_norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return F.gelu(x)


class FeatureExtractor(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        blocks, c_in = [], 1
        for i, (c_out, k, s) in enumerate(cfg.conv_layers):
            norm: nn.Module | None = None
            if cfg.extractor_mode == "group_norm" and i == 0:
                norm = nn.GroupNorm(c_out, c_out, affine=True)
            elif cfg.extractor_mode == "layer_norm":
                norm = ChannelLayerNorm(c_out)
            blocks.append(ConvBlock(c_in, c_out, k, s, cfg.conv_bias, norm))
            c_in = c_out
        self.conv_layers = nn.ModuleList(blocks)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for b in self.conv_layers:
            lengths = torch.clamp(
                torch.div(lengths - b.kernel_size, b.stride, rounding_mode="floor") + 1, min=0
            )
        return lengths

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) → (batch, frames, channels)."""
        x = wave.unsqueeze(1)
        for block in self.conv_layers:
            x = block(x)
        return x.transpose(1, 2)
