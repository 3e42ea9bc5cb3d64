"""Gumbel-softmax product quantiser: wav2vec 2.0's targets (DESIGN §5; Baevski et al. 2020).

Follows fairseq's `fairseq/modules/gumbel_vector_quantizer.py`: a linear map of each front-end
frame to G groups of V logits; in training one entry per group is drawn by Gumbel-softmax with
straight-through hard codes (one-hot in the forward pass, the soft probabilities' gradient in
the backward pass), at evaluation the argmax; the chosen entries of the G codebooks are
concatenated. The temperature decays from `max_temp` by `decay` per update down to `min_temp`.
Perplexities are computed over valid frames only: `prob_perplexity` (of the batch-averaged
softmax, what the diversity loss raises) and `code_perplexity` (of the hard codes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class QuantizerConfig:
    groups: int = 2  # G
    entries: int = 320  # V per group
    dim: int = 256  # codevector dim (split over the groups); fairseq: final_dim
    max_temp: float = 2.0
    min_temp: float = 0.5
    decay: float = 0.999995  # per update, fairseq's latent_temp

    def temperature(self, step: int) -> float:
        return max(self.max_temp * self.decay**step, self.min_temp)


@dataclass
class Quantized:
    vectors: torch.Tensor  # (batch, frames, dim)
    codes: torch.Tensor  # (batch, frames, groups) entry index per group
    prob_perplexity: torch.Tensor  # scalar, Σ_g exp(H(mean softmax of group g))
    code_perplexity: torch.Tensor  # scalar, the same of the hard codes
    temperature: float


def perplexity(probs: torch.Tensor) -> torch.Tensor:
    """probs (n, groups, entries) → Σ_g exp(entropy of the mean over n of group g)."""
    avg = probs.mean(0)
    return torch.exp(-(avg * torch.log(avg + 1e-7)).sum(-1)).sum()


class GumbelQuantizer(nn.Module):
    def __init__(self, in_dim: int, cfg: QuantizerConfig):
        super().__init__()
        if cfg.dim % cfg.groups:
            raise ValueError(f"quantizer dim {cfg.dim} must divide into {cfg.groups} groups")
        self.cfg = cfg
        self.weight_proj = nn.Linear(in_dim, cfg.groups * cfg.entries)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)  # fairseq's init
        nn.init.zeros_(self.weight_proj.bias)
        self.codebook = nn.Parameter(
            torch.empty(cfg.groups, cfg.entries, cfg.dim // cfg.groups).uniform_()
        )

    def forward(
        self,
        x: torch.Tensor,
        step: int = 0,
        valid: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Quantized:
        """x (batch, frames, in_dim); `valid` (batch, frames) excludes padding from the
        perplexities; `generator` draws the Gumbel noise (on the CPU, as the masks are)."""
        g, v = self.cfg.groups, self.cfg.entries
        b, t, _ = x.shape
        logits = self.weight_proj(x).float().view(b, t, g, v)
        keep = (
            torch.ones(b, t, dtype=torch.bool, device=x.device) if valid is None else valid
        )  # fmt: skip
        flat = logits[keep]  # (n, g, v)
        hard_idx = logits.argmax(-1)
        hard = F.one_hot(hard_idx, v).to(logits.dtype)
        temp = self.cfg.temperature(step)
        if self.training:
            u = torch.rand(logits.shape, generator=generator, device="cpu").to(logits.device)
            gumbel = -torch.log((-torch.log(u.clamp(1e-10, 1.0))).clamp(min=1e-10))
            soft = F.softmax((logits + gumbel) / temp, dim=-1)
            idx = soft.argmax(-1)
            onehot = F.one_hot(idx, v).to(soft.dtype)
            weights = onehot - soft.detach() + soft  # straight-through
        else:
            idx, weights = hard_idx, hard
        vectors = torch.einsum("btgv,gvd->btgd", weights, self.codebook.float()).reshape(b, t, -1)
        return Quantized(
            vectors=vectors,
            codes=idx,
            prob_perplexity=perplexity(F.softmax(flat, dim=-1)),
            code_perplexity=perplexity(hard[keep]),
            temperature=temp,
        )
