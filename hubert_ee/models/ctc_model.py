"""Encoder + CTC head + aleatoric-uncertainty head (DESIGN §6; Kendall & Gal 2017).

The variance head predicts σ²_t = softplus(W h_t) per frame and class. Training samples
g_t = f_t + σ_t ⊙ ε and integrates the CTC likelihood over S samples
(hubert_ee/train/losses.py); inference uses the plain logits f_t. Distillation matches the
(normalized) σ² of the teachers. A teacher's head may instead read its logits
(`variance_input="logits"`, `hubert_ee.models.variance_head`), fitted after training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.variance_head import LogitVarianceHead


@dataclass
class CTCOutput:
    logits: torch.Tensor  # (batch, frames, classes)
    variance: torch.Tensor | None  # σ², same shape; None without an uncertainty head
    frame_lengths: torch.Tensor | None


class CTCModel(nn.Module):
    def __init__(
        self,
        encoder: HubertEncoder,
        vocab: CharVocab,
        uncertainty: bool = True,
        final_dropout: float = 0.1,
        freeze_frontend: bool = True,
        variance_input: str = "hidden",
        variance_hidden: int = 256,
    ):
        super().__init__()
        self.freeze_frontend = freeze_frontend  # fine-tuning keeps the CNN fixed (DESIGN §6)
        dim = encoder.cfg.embed_dim
        self.encoder = encoder
        self.final_dropout = nn.Dropout(final_dropout)
        self.vocab_tokens = vocab.tokens
        self.head = nn.Linear(dim, len(vocab))
        self.variance_head: nn.Module | None = None
        if uncertainty and variance_input == "logits":
            self.variance_head = LogitVarianceHead(len(vocab), variance_hidden)
        elif uncertainty and variance_input == "hidden":
            self.variance_head = nn.Linear(dim, len(vocab))
            nn.init.zeros_(self.variance_head.weight)  # small variances: σ² ≈ softplus(-4)
            nn.init.constant_(self.variance_head.bias, -4.0)
        elif uncertainty:
            raise ValueError(f"variance_input must be 'hidden' or 'logits', got {variance_input!r}")

    @property
    def variance_input(self) -> str:
        """What the variance head reads: the final hidden state h or the logits f."""
        return "logits" if isinstance(self.variance_head, LogitVarianceHead) else "hidden"

    @property
    def vocab(self) -> CharVocab:
        return CharVocab(self.vocab_tokens)

    def frontend(
        self,
        wave: torch.Tensor,
        lengths: torch.Tensor | None,
        time_mask: torch.Tensor | None = None,
        channel_mask: torch.Tensor | None = None,
    ):
        """Projected frames with fine-tuning masks applied: (x, valid, frame_lengths)."""
        x, valid, frame_lengths = self.encoder.features(
            wave, lengths, frontend_grad=not self.freeze_frontend
        )
        if time_mask is not None:
            x = torch.where(time_mask[..., None], self.encoder.mask_embedding.to(x.dtype), x)
        if channel_mask is not None:
            x = x.masked_fill(channel_mask[:, None, :], 0.0)
        return x, valid, frame_lengths

    def heads(
        self, h: torch.Tensor, lengths: torch.Tensor | None, variance: bool = True
    ) -> CTCOutput:
        """`variance=False`: the logits alone (inference: decoding reads f_t, only training and
        distillation read σ², so a deployed model does not pay for it)."""
        h = self.final_dropout(h)
        logits = self.head(h).float()
        var = None
        if variance and isinstance(self.variance_head, LogitVarianceHead):
            var = self.variance_head(logits)
        elif variance and self.variance_head is not None:
            var = F.softplus(self.variance_head(h).float())
        return CTCOutput(logits, var, lengths)

    def forward(
        self,
        wave: torch.Tensor,
        lengths: torch.Tensor | None = None,
        time_mask: torch.Tensor | None = None,
        channel_mask: torch.Tensor | None = None,
    ) -> CTCOutput:
        x, valid, frame_lengths = self.frontend(wave, lengths, time_mask, channel_mask)
        return self.heads(self.encoder.layers(x, valid)[-1], frame_lengths)

    def logits(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> CTCOutput:
        """Inference: `forward` without the variance head."""
        x, valid, frame_lengths = self.frontend(wave, lengths)
        return self.heads(self.encoder.layers(x, valid)[-1], frame_lengths, variance=False)
