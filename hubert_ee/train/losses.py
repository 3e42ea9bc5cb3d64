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


def _noisy_logits(
    logits: torch.Tensor, variance: torch.Tensor, samples: int, generator: torch.Generator | None
) -> list[torch.Tensor]:
    """S draws of f + σ ⊙ ε, ε ~ N(0, I) drawn on the CPU generator (the same noise on any
    device, so a run is reproducible wherever it trains)."""
    std = variance.float().sqrt()
    return [
        logits
        + std * torch.randn(logits.shape, generator=generator, device="cpu").to(logits.device)
        for _ in range(samples)
    ]


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
    nll = [
        ctc_nll(g, frame_lengths, targets, target_lengths, blank)
        for g in _noisy_logits(logits, variance, samples, generator)
    ]
    integrated = math.log(samples) - torch.logsumexp(-torch.stack(nll), dim=0)
    return (integrated / target_lengths.to(integrated).clamp(min=1)).mean()


def alignment_posteriors(
    logits: torch.Tensor,
    frame_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """γ_t(c) = p(π_t = c | y, x), the CTC forward-backward occupation of each class at each
    frame given the reference, and the (batch, frames) mask of frames that have one (valid
    frames of feasible utterances). Read off torch's CTC gradient, which is taken through the
    log-softmax: ∂CTC/∂f_t(c) = p_t(c) − γ_t(c)."""
    leaf = logits.detach().float().requires_grad_(True)
    with torch.enable_grad():
        nll = ctc_nll(leaf, frame_lengths, targets, target_lengths, blank)
        (grad,) = torch.autograd.grad(nll.sum(), leaf)
    gamma = (F.softmax(leaf.detach(), dim=-1) - grad).clamp(min=0.0)
    frames = torch.arange(logits.shape[1], device=logits.device)
    valid = (frames[None, :] < frame_lengths[:, None]) & torch.isfinite(nll)[:, None]
    valid &= (nll > 0)[:, None]  # zero_infinity turned an infeasible utterance into 0
    return gamma, valid


def frame_integrated_ctc_loss(
    logits: torch.Tensor,
    variance: torch.Tensor | None,
    frame_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    samples: int,
    blank: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """CTC on f, plus Kendall & Gal's integrated likelihood taken per frame against the CTC
    alignment posterior γ_t (DESIGN §6, the frame-level reading):
        mean_t  − Σ_c γ_t(c) · log( 1/S · Σ_s softmax(f_t + σ_t ⊙ ε_s)_c ),  f detached.

    Why per frame: integrated over whole utterances, one noise draw must fix the few wrong
    frames without breaking the hundreds of right ones, so S samples almost never pay and σ²
    shrinks everywhere; per frame, σ² grows exactly where f disagrees with the alignment. With
    f detached the σ term trains only the variance head, and f sees the plain CTC loss."""
    loss = ctc_loss(logits, frame_lengths, targets, target_lengths, blank)
    if variance is None or samples == 0:
        return loss
    gamma, valid = alignment_posteriors(logits, frame_lengths, targets, target_lengths, blank)
    per_frame = integrated_frame_nll(logits.detach().float(), variance, gamma, samples, generator)
    return loss + _masked_frame_mean(per_frame, valid)


def integrated_frame_nll(
    logits: torch.Tensor,
    variance: torch.Tensor,
    gamma: torch.Tensor,
    samples: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per frame − Σ_c γ_t(c) · log( 1/S · Σ_s softmax(f_t + σ_t ⊙ ε_s)_c ): Kendall & Gal's
    integrated likelihood of the alignment posterior γ (any leading shape, classes last)."""
    log_p = [F.log_softmax(g, dim=-1) for g in _noisy_logits(logits, variance, samples, generator)]
    log_mean_p = torch.logsumexp(torch.stack(log_p), dim=0) - math.log(samples)
    return -(gamma * log_mean_p).sum(-1)


def uncertain_ctc_loss(mode: str, *args, **kwargs) -> torch.Tensor:
    """The CTC loss of a model with an uncertainty head, integrated over σ per utterance
    (`sequence`, `sampled_ctc_loss`) or per frame (`frame`, `frame_integrated_ctc_loss`)."""
    if mode == "sequence":
        return sampled_ctc_loss(*args, **kwargs)
    if mode == "frame":
        return frame_integrated_ctc_loss(*args, **kwargs)
    raise ValueError(f"unknown uncertainty_loss {mode!r} (sequence | frame)")


def _masked_frame_mean(
    per_frame: torch.Tensor, valid: torch.Tensor, row_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over valid frames of a (batch, frames) tensor; `row_weights` scales each utterance's
    frames, (batch,), or each frame, (batch, frames) (teacher weights r_k per utterance or frame)."""
    valid = valid.to(per_frame.dtype)
    if row_weights is None:
        weighted = valid
    else:
        weighted = valid * (row_weights[:, None] if row_weights.dim() == 1 else row_weights)
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


def log_total_variance(variance: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """log Σ_c σ²_t per frame, (batch, frames): the size of σ², which ranks a teacher's errors."""
    return variance.float().sum(-1).clamp(min=eps).log()


def uncertainty_size_loss(
    student_variance: torch.Tensor,
    teacher_variance: torch.Tensor,
    valid: torch.Tensor,
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """mean_t (log Σ_c σ²^k_t − log Σ_c σ²^s_t)² over valid frames. The per-frame shape σ̂ of
    the teachers' σ² is one fixed class (experiments/results/sigma_classes.json); its size is
    what ranks their errors, so this term teaches the student where the teachers are unsure."""
    diff = log_total_variance(teacher_variance) - log_total_variance(student_variance)
    return _masked_frame_mean(diff**2, valid, row_weights)


def uncertainty_profile_loss(
    student_variance: torch.Tensor,
    teacher_variance: torch.Tensor,
    valid: torch.Tensor,
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """mean_t (ℓ^k_t − ℓ^s_t)² over valid frames, ℓ_t = log Σ_c σ²_t minus its mean over the
    utterance's valid frames: where in the utterance a teacher is unsure, free of its level.
    Matching the level too (uncertainty_size_loss) asks one student for two teachers' levels, an
    order of magnitude apart, and starts from a student level far from both."""
    v = valid.float()
    frames = v.sum(-1, keepdim=True).clamp(min=1)

    def centred(variance: torch.Tensor) -> torch.Tensor:
        log_u = log_total_variance(variance)
        return (log_u - (log_u * v).sum(-1, keepdim=True) / frames) * v

    diff = centred(teacher_variance) - centred(student_variance)
    return _masked_frame_mean(diff**2, valid, row_weights)
