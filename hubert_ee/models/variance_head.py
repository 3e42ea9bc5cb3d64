"""The teachers' uncertainty head read off the logits (issue 14; DESIGN §6 revised).

Kendall & Gal's head is σ²_t = softplus(W h_t), trained with the model. On our teachers it
ranks errors backwards under every recipe tried (README, "Teachers"): the integrated
likelihood says "shrink σ² where a noisy draw would flip a right frame", i.e. on the small-
margin frames, which are where the errors are; a linear map of h cannot see the margin, only
learn where the training frames were fragile. This head reads the frame's log-softmax
(its shape: margin, entropy, which classes compete) through a small MLP, and is fitted after
the CTC head with the same integrated likelihood, the logits fixed
(`hubert_ee.train.variance_fit`). Having only the softmax's shape to go on, it cannot memorise
the training frames, and on dev it ranks errors the right way round.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LogitVarianceHead(nn.Module):
    """σ²_t = softplus(W₂ GELU(W₁ log_softmax(f_t) + b₁) + b₂), per class. W₂ starts at zero
    and b₂ at `bias` (σ² ≈ softplus(−4) ≈ 0.018 everywhere), as the linear head does."""

    def __init__(self, classes: int, hidden: int = 256, bias: float = -4.0):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(classes, hidden), nn.GELU())
        self.out = nn.Linear(hidden, classes)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, bias)

    @property
    def hidden(self) -> int:
        return self.out.in_features

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.out(self.body(F.log_softmax(logits.float(), dim=-1))))
