"""wav2vec 2.0's pretraining head on the shared encoder (DESIGN §5; Baevski et al. 2020).

As in fairseq's `Wav2Vec2Model.forward` (`fairseq/models/wav2vec/wav2vec2.py`): the front-end
frames, layer-normed and before the projection, are quantised (the targets); the projected
frames are masked with the encoder's mask embedding (the same masks as HuBERT's); the context
vectors of the masked frames are projected (`final_proj`) and compared with the projected
targets (`project_q`) by the contrastive loss against distractors from other masked frames of
the same utterance. Loss = contrastive + `diversity_weight` · diversity +
`feature_penalty_weight` · mean square of the front-end frames.
"""

from __future__ import annotations

import torch
from torch import nn

from hubert_ee.models.contrastive import (
    contrastive_loss,
    diversity_loss,
    feature_penalty,
    sample_negatives,
)
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.pretrain_head import scaled_frontend
from hubert_ee.models.quantizer import GumbelQuantizer, QuantizerConfig


class Wav2Vec2PretrainModel(nn.Module):
    def __init__(
        self,
        encoder: HubertEncoder,
        quantizer: QuantizerConfig,
        final_dim: int = 256,
        num_negatives: int = 100,
        temperature: float = 0.1,
        diversity_weight: float = 0.1,
        feature_penalty_weight: float = 10.0,
        feature_grad_mult: float = 0.1,
    ):
        super().__init__()
        self.encoder = encoder
        self.quantizer = GumbelQuantizer(encoder.cfg.frontend_dim, quantizer)
        self.project_q = nn.Linear(quantizer.dim, final_dim)
        self.final_proj = nn.Linear(encoder.cfg.embed_dim, final_dim)
        self.num_negatives = num_negatives
        self.temperature = temperature
        self.diversity_weight = diversity_weight
        self.feature_penalty_weight = feature_penalty_weight
        self.feature_grad_mult = feature_grad_mult

    def forward(
        self,
        wave: torch.Tensor,
        lengths: torch.Tensor,
        labels: torch.Tensor | None,
        mask: torch.Tensor,
        step: int = 0,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """mask (batch, frames): masked valid frames; `labels` is unused (the pretraining loop's
        one calling convention). `generator` draws the distractors and the Gumbel noise (the
        same on any device). Returns the loss and its parts."""
        enc = self.encoder
        feats, valid = scaled_frontend(enc, wave, lengths, self.feature_grad_mult)
        mask = mask & valid
        pen = feature_penalty(feats, valid)
        normed = enc.encoder.feature_projection.layer_norm(feats)
        q = self.quantizer(normed, step, valid, generator)
        x = enc.encoder.feature_projection(feats).masked_fill(~valid[..., None], 0.0)
        x = torch.where(mask[..., None], enc.mask_embedding.to(x.dtype), x)
        out = enc.layers(x, valid)[-1]
        positives, negatives = sample_negatives(mask, self.num_negatives, generator)
        contrastive, acc = contrastive_loss(
            self.final_proj(out), self.project_q(q.vectors), positives, negatives, self.temperature
        )
        cfg = self.quantizer.cfg
        diversity = diversity_loss(q.prob_perplexity, cfg.groups, cfg.entries)
        loss = contrastive + self.diversity_weight * diversity + self.feature_penalty_weight * pen
        return {
            "loss": loss,
            "contrastive": contrastive.detach(),
            "diversity": diversity.detach(),
            "feature_penalty": pen.detach(),
            "masked_acc": acc,
            "masked_frames": mask.sum(),
            "prob_perplexity": q.prob_perplexity.detach(),
            "code_perplexity": q.code_perplexity.detach(),
            "temperature": torch.tensor(q.temperature),
        }
