"""The HuBERT / wav2vec 2.0 encoder: waveform → 50 Hz contextual representations.

The module tree mirrors torchaudio's `Wav2Vec2Model` (`feature_extractor`,
`encoder.feature_projection`, `encoder.transformer`) so that checkpoints in torchaudio layout
load by name (see hubert_ee/models/convert.py).
"""

from __future__ import annotations

import torch
from torch import nn

from hubert_ee.models.config import EncoderConfig
from hubert_ee.models.feature_extractor import FeatureExtractor
from hubert_ee.models.logmel_frontend import LogMelFrontend
from hubert_ee.models.transformer import Transformer


class FeatureProjection(nn.Module):
    def __init__(self, c_in: int, dim: int, dropout: float):
        super().__init__()
        self.layer_norm = nn.LayerNorm(c_in)
        self.projection = nn.Linear(c_in, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.projection(self.layer_norm(x)))


class ContextEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.feature_projection = FeatureProjection(
            cfg.frontend_dim, cfg.embed_dim, cfg.projection_dropout
        )
        self.transformer = Transformer(cfg)


def padding_masks(
    lengths: torch.Tensor | None, frames: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(valid (batch, frames) bool, key mask (batch, 1, 1, frames) bool) or (None, None)."""
    if lengths is None:
        return None, None
    valid = torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]
    return valid, valid[:, None, None, :]


class HubertEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.feature_extractor = (
            LogMelFrontend(cfg.n_mels, cfg.logmel_norm, cfg.logmel_top_db)
            if cfg.frontend == "logmel"
            else FeatureExtractor(cfg)
        )
        self.encoder = ContextEncoder(cfg)
        # replaces masked frames in pretraining, and in fine-tuning's time masks (fairseq keeps
        # it with the model, so fine-tuning feeds the vector the encoder learned)
        self.mask_embedding = nn.Parameter(torch.empty(cfg.embed_dim).uniform_())

    def frontend(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Front-end frames (batch, frames, frontend_dim), before the projection."""
        if isinstance(self.feature_extractor, LogMelFrontend):
            return self.feature_extractor(wave, lengths)
        return self.feature_extractor(wave)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.feature_extractor.output_lengths(lengths)

    def features(
        self, wave: torch.Tensor, lengths: torch.Tensor | None = None, frontend_grad: bool = True
    ):
        """CNN + projection: (projected frames, valid mask, frame lengths); padded frames zeroed.

        `frontend_grad=False` runs the CNN without autograd (frozen during fine-tuning)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and frontend_grad):
            x = self.frontend(wave, lengths)
        frame_lengths = None if lengths is None else self.frame_lengths(lengths)
        valid, _ = padding_masks(frame_lengths, x.shape[1])
        x = self.encoder.feature_projection(x)
        if valid is not None:
            x = x.masked_fill(~valid[..., None], 0.0)
        return x, valid, frame_lengths

    def layers(
        self, x: torch.Tensor, valid: torch.Tensor | None, num_layers: int | None = None
    ) -> list[torch.Tensor]:
        key_mask = None if valid is None else valid[:, None, None, :]
        return self.encoder.transformer(x, key_mask, num_layers)

    def forward(
        self, wave: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(batch, samples) → ((batch, frames, dim) last-layer output, frame lengths)."""
        x, valid, frame_lengths = self.features(wave, lengths)
        return self.layers(x, valid)[-1], frame_lengths

    def hidden_states(
        self, wave: torch.Tensor, lengths: torch.Tensor | None = None, num_layers: int | None = None
    ):
        """Outputs of transformer layers 1..num_layers, and the frame lengths."""
        x, valid, frame_lengths = self.features(wave, lengths)
        return self.layers(x, valid, num_layers), frame_lengths


@torch.no_grad()
def reinit_top_layers(encoder: HubertEncoder, n: int, seed: int) -> None:
    """Give the top n Transformer layers fresh random weights (the pretext task specialises
    them; Pasad et al. 2021 find re-initialising them helps fine-tuning)."""
    layers = encoder.encoder.transformer.layers
    if n > len(layers):
        raise ValueError(f"reinit_top_layers {n} > the encoder's {len(layers)} layers")
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    fresh = Transformer(encoder.cfg).layers
    for i in range(len(layers) - n, len(layers)):
        layers[i].load_state_dict(fresh[i].state_dict())
    torch.random.set_rng_state(gen_state)
