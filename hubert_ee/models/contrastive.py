"""wav2vec 2.0's objective (DESIGN §5): contrastive loss over masked frames with distractors
from the same utterance, the codebook diversity loss and the feature penalty.

Negative sampling follows fairseq's `Wav2Vec2Model.sample_negatives`
(`fairseq/models/wav2vec/wav2vec2.py`): for each masked frame, K indices drawn uniformly with
replacement from the *other* masked frames of the same utterance (an index ≥ the frame's own is
shifted by one, so the positive is never drawn). Unlike fairseq, utterances may have different
numbers of masked frames (no `require_same_masks`), and padding is never masked, so it is never
a target or a distractor. As in fairseq, a distractor whose quantised vector equals the
positive's exactly (the same codes) is excluded from the softmax (`neg_is_pos`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_negatives(
    mask: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """mask (batch, frames) bool: the masked, valid frames. Returns (positives (n,), negatives
    (n, k)) as flat indices b·frames + t; utterances with fewer than 2 masked frames have no
    distractors and contribute no positives."""
    b, t = mask.shape
    pos, neg = [], []
    for i in range(b):
        idx = torch.nonzero(mask[i].cpu(), as_tuple=False).flatten()
        m = len(idx)
        if m < 2:
            continue
        draw = torch.randint(0, m - 1, (m, k), generator=generator)
        draw += (draw >= torch.arange(m)[:, None]).long()  # skip the frame itself
        pos.append(i * t + idx)
        neg.append(i * t + idx[draw])
    if not pos:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, torch.zeros(0, k, dtype=torch.long)
    return torch.cat(pos).to(mask.device), torch.cat(neg).to(mask.device)


def contrastive_loss(
    context: torch.Tensor,
    targets: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """context, targets (batch, frames, dim) (already projected to the same dim); positives
    (n,) and negatives (n, k) flat frame indices. Mean over the n masked frames of
    −log softmax_0([cos(c, y), cos(c, ỹ_1) … cos(c, ỹ_k)] / temperature); returns (loss,
    accuracy: the share of frames whose positive scores highest)."""
    if len(positives) == 0:
        zero = context.sum() * 0.0
        return zero, zero.detach()
    c = context.reshape(-1, context.shape[-1])[positives].float()
    flat_y = targets.reshape(-1, targets.shape[-1]).float()
    y = flat_y[positives]
    ys = torch.cat([y[:, None], flat_y[negatives]], dim=1)  # (n, 1 + k, dim)
    logits = F.cosine_similarity(c[:, None], ys, dim=-1) / temperature
    neg_is_pos = (flat_y[negatives] == y[:, None]).all(-1)
    logits[:, 1:] = logits[:, 1:].masked_fill(neg_is_pos, float("-inf"))
    target = torch.zeros(len(positives), dtype=torch.long, device=logits.device)
    loss = F.cross_entropy(logits, target)
    accuracy = (logits.argmax(-1) == 0).float().mean()
    return loss, accuracy.detach()


def diversity_loss(prob_perplexity: torch.Tensor, groups: int, entries: int) -> torch.Tensor:
    """(G·V − perplexity) / (G·V): 0 when every entry is used equally, (G·V − G)/(G·V) when
    each group has collapsed onto one entry."""
    total = groups * entries
    return (total - prob_perplexity) / total


def feature_penalty(features: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean square of the front-end features (fairseq's `features_pen`), over valid frames."""
    f = features.float().pow(2)
    if valid is None:
        return f.mean()
    return f[valid].mean()
