"""Training losses of the CTC models: CTC with its likelihood integrated over sampled
aleatoric noise (DESIGN §6), and the distillation terms (DESIGN §7).

CTC is normalised per utterance by its target length and averaged over the batch
(`reduction="mean"`, as ESPnet/torchaudio recipes do); `zero_infinity` keeps an utterance whose
transcript is too long for its frames from poisoning the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def ctc_loss(
    logits: torch.Tensor,
    frame_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int = 0,
) -> torch.Tensor:
    """logits (batch, frames, classes); targets concatenated (sum of target_lengths,)."""
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)
    return F.ctc_loss(
        log_probs, targets, frame_lengths, target_lengths, blank=blank, zero_infinity=True
    )


def ctc_nll(
    logits: torch.Tensor,
    frame_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int = 0,
) -> torch.Tensor:
    """−log p(y | x) per utterance, (batch,); an infeasible utterance (transcript longer than
    its frames allow) gives 0, as `zero_infinity` does."""
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)
    return F.ctc_loss(
        log_probs,
        targets,
        frame_lengths,
        target_lengths,
        blank=blank,
        reduction="none",
        zero_infinity=True,
    )


def sampled_ctc_loss(
    logits: torch.Tensor,
    variance: torch.Tensor | None,
    frame_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    samples: int,
    blank: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Kendall & Gal's integrated likelihood (DESIGN §6): per utterance
    −log(1/S · Σ_s exp(−CTC(f + σ ⊙ ε_s))), ε_s ~ N(0, I), then ÷ target length and averaged
    over the batch like `ctc_loss`; plain CTC without a variance.

    Averaging CTC(f + σε_s) instead would be minimised by σ² → 0; the log-mean-exp lets a
    large σ² pay off where the logits are confidently wrong (a noisy sample may explain y)."""
    if variance is None or samples == 0:
        return ctc_loss(logits, frame_lengths, targets, target_lengths, blank)
    std = variance.float().sqrt()
    nll = []
    for _ in range(samples):
        eps = torch.randn(logits.shape, generator=generator, device="cpu").to(logits.device)
        nll.append(ctc_nll(logits + std * eps, frame_lengths, targets, target_lengths, blank))
    integrated = math.log(samples) - torch.logsumexp(-torch.stack(nll), dim=0)
    return (integrated / target_lengths.to(integrated).clamp(min=1)).mean()


def _masked_frame_mean(
    per_frame: torch.Tensor, valid: torch.Tensor, row_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over valid frames of a (batch, frames) tensor; `row_weights` (batch,) scales each
    utterance's frames (per-utterance teacher weights r_k)."""
    valid = valid.to(per_frame.dtype)
    weighted = valid if row_weights is None else valid * row_weights[:, None]
    return (per_frame * weighted).sum() / valid.sum().clamp(min=1)


def token_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    valid: torch.Tensor,
    temperature: float,
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """τ² · mean_t KL(softmax(f^k_t/τ) ‖ softmax(f^s_t/τ)) over valid frames (DESIGN §7)."""
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    kl = (t.exp() * (t - s)).sum(-1)
    return temperature**2 * _masked_frame_mean(kl, valid, row_weights)


def normalized_variance(variance: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """σ̂ = σ² / ‖σ²‖ per frame (L2 norm over classes)."""
    v = variance.float()
    return v / v.norm(dim=-1, keepdim=True).clamp(min=eps)


def uncertainty_kd_loss(
    student_variance: torch.Tensor,
    teacher_variance: torch.Tensor,
    valid: torch.Tensor,
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """mean_t ‖σ̂^k_t − σ̂^s_t‖² over valid frames (DESIGN §7)."""
    diff = normalized_variance(teacher_variance) - normalized_variance(student_variance)
    return _masked_frame_mean((diff**2).sum(-1), valid, row_weights)
