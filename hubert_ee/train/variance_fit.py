"""Refit a teacher's uncertainty head on its logits (issue 14; `finetune.variance_refit`).

After CTC training the teacher's logits f are fixed. A fresh `LogitVarianceHead` is fitted by
Kendall & Gal's integrated likelihood per frame against the CTC alignment posterior γ of the
reference (`integrated_frame_nll`, the frame-level reading of DESIGN §6) on the teacher's train
split, then replaces the head trained with the model. Only σ² changes: decoding reads f.
"""

from __future__ import annotations

import torch

from hubert_ee.config import VarianceRefitParams
from hubert_ee.data.asr_data import ASRData
from hubert_ee.decode.emissions import emissions
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.variance_head import LogitVarianceHead
from hubert_ee.train.losses import alignment_posteriors, integrated_frame_nll


def frame_targets(
    log_probs: list[torch.Tensor], targets: list[torch.Tensor], blank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every frame of every feasible utterance: (log-softmax f, γ), each (frames, classes).
    An utterance whose transcript cannot be aligned to its frames is left out."""
    fs, gammas = [], []
    for lp, y in zip(log_probs, targets, strict=True):
        gamma, valid = alignment_posteriors(
            lp[None], torch.tensor([len(lp)]), y, torch.tensor([len(y)]), blank
        )
        if bool(valid.all()):
            fs.append(lp)
            gammas.append(gamma[0])
    if not fs:
        raise ValueError("no utterance of the split can be aligned to its transcript")
    return torch.cat(fs), torch.cat(gammas)


def fit_logit_variance(
    f: torch.Tensor, gamma: torch.Tensor, cfg: VarianceRefitParams, seed: int
) -> tuple[LogitVarianceHead, dict[str, float]]:
    """A `LogitVarianceHead` fitted to frames (f, γ); its first and last minibatch losses."""
    torch.manual_seed(seed)
    head = LogitVarianceHead(f.shape[-1], cfg.hidden)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    batch = min(cfg.frames_per_step, len(f))
    losses = []
    for _ in range(cfg.steps):
        pick = torch.randint(len(f), (batch,), generator=gen)
        var = head(f[pick]) + 1e-8  # sqrt's gradient at σ² = 0 is infinite
        loss = integrated_frame_nll(f[pick], var, gamma[pick], cfg.samples, gen).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return head.eval(), {"loss_first": round(losses[0], 5), "loss_last": round(losses[-1], 5)}


def refit_variance_head(
    model: CTCModel,
    train: ASRData,
    cfg: VarianceRefitParams,
    seed: int,
    batch_seconds: float,
    device: torch.device,
) -> dict[str, float]:
    """Replace `model`'s variance head by one fitted on its own logits over `train`."""
    log_probs = emissions(model, train, batch_seconds, device)
    f, gamma = frame_targets(log_probs, train.targets, train.vocab.blank)
    head, stats = fit_logit_variance(f, gamma, cfg, seed)
    model.variance_head = head.to(next(model.parameters()).device)
    return {"frames": len(f), **stats}
