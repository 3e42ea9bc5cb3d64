"""HuBERT masked-prediction head: mask embedding, projection and label embeddings.

Loss (Hsu et al. 2021, α = 1): cross-entropy over the K cluster ids of the masked frames,
with logits cos(W·o_t, e_c) / τ, τ = 0.1; unmasked frames carry no loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hubert_ee.models.encoder import HubertEncoder


class GradScale(torch.autograd.Function):
    """Identity forward, gradient × scale backward (fairseq's feature_grad_mult)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def scaled_frontend(
    encoder: HubertEncoder, wave: torch.Tensor, lengths: torch.Tensor, grad_mult: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-end frames, their gradient scaled by `grad_mult` in training (fairseq's
    feature_grad_mult), and the (batch, frames) mask of valid frames: what both pretraining
    objectives start from."""
    feats = encoder.frontend(wave, lengths)
    if encoder.training and grad_mult != 1.0:
        feats = GradScale.apply(feats, grad_mult)
    frame_lengths = encoder.frame_lengths(lengths)
    valid = torch.arange(feats.shape[1], device=wave.device)[None] < frame_lengths[:, None]
    return feats, valid


class HubertPretrainModel(nn.Module):
    def __init__(
        self,
        encoder: HubertEncoder,
        num_classes: int,
        final_dim: int = 256,
        temperature: float = 0.1,
        feature_grad_mult: float = 0.1,
    ):
        super().__init__()
        dim = encoder.cfg.embed_dim
        self.encoder = encoder
        self.final_proj = nn.Linear(dim, final_dim)
        self.label_embeddings = nn.Parameter(torch.empty(num_classes, final_dim).uniform_())
        self.temperature = temperature
        self.feature_grad_mult = feature_grad_mult

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, dim) → (N, K) cosine logits / τ (computed in float32)."""
        p = F.normalize(self.final_proj(x).float(), dim=-1)
        e = F.normalize(self.label_embeddings.float(), dim=-1)
        return p @ e.T / self.temperature

    def forward(
        self, wave: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """labels, mask: (batch, frames); returns loss (mean over masked frames) and accuracy."""
        enc = self.encoder
        feats, valid = scaled_frontend(enc, wave, lengths, self.feature_grad_mult)
        x = enc.encoder.feature_projection(feats).masked_fill(~valid[..., None], 0.0)
        x = torch.where(mask[..., None], enc.mask_embedding.to(x.dtype), x)
        out = enc.layers(x, valid)[-1]
        logits = self.logits(out[mask])
        target = labels[mask].long()
        loss = F.cross_entropy(logits, target)
        with torch.no_grad():
            acc = (logits.argmax(-1) == target).float().mean()
        return {"loss": loss, "masked_acc": acc, "masked_frames": mask.sum()}
