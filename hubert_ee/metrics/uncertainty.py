"""Is a teacher's uncertainty head informative? (DESIGN §6)

Two checks on a labeled split, both on the greedy transcript: the utterance's mean Σ_c σ²_t
must rank utterances by their CER (Spearman ρ), and the Σ_c σ² at the frame where a greedy
token is emitted must separate wrong tokens (substituted or inserted, after an edit-distance
alignment to the reference characters) from right ones (AUROC; 0.5 = no information).
"""

from __future__ import annotations

import numpy as np
import torch

from hubert_ee.metrics.wer import cer


def greedy_tokens(log_probs: torch.Tensor, blank: int = 0) -> tuple[list[int], list[int]]:
    """The best path's tokens and the frame where each is emitted (first frame of its run)."""
    best = log_probs.argmax(-1).tolist()
    ids, frames = [], []
    for t, c in enumerate(best):
        if c != blank and (t == 0 or best[t - 1] != c):
            ids.append(c)
            frames.append(t)
    return ids, frames


def tokens_correct(ref: list[int], hyp: list[int]) -> list[bool]:
    """For each hypothesis token: is it matched to an equal reference token in a minimum
    edit-distance alignment (ties prefer a match, then a substitution)?"""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), dtype=np.int64)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(
                d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]), d[i - 1, j] + 1, d[i, j - 1] + 1
            )
    correct = [False] * m
    i, j = n, m
    while i > 0 and j > 0:
        if d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            correct[j - 1] = ref[i - 1] == hyp[j - 1]
            i, j = i - 1, j - 1
        elif d[i, j] == d[i - 1, j] + 1:
            i -= 1  # deletion: no hypothesis token
        else:
            j -= 1  # insertion: wrong
    return correct


def uncertainty_quality(
    outputs: list[tuple[torch.Tensor, torch.Tensor]], refs: list[str], vocab
) -> dict[str, float]:
    """{"spearman_cer", "auroc_token"} of (log-probs, σ²) per utterance against references."""
    from scipy.stats import spearmanr  # imported on use: most importers never score
    from sklearn.metrics import roc_auc_score

    utt_var, utt_cer, token_var, token_wrong = [], [], [], []
    for (lp, var), ref in zip(outputs, refs, strict=True):
        total = var.sum(-1)  # Σ_c σ²_t per frame
        ids, frames = greedy_tokens(lp, vocab.blank)
        utt_var.append(float(total.mean()))
        utt_cer.append(cer([ref], [vocab.decode(ids)]) if ref else 0.0)
        ok = tokens_correct(vocab.encode(ref).tolist(), ids)
        token_var.extend(float(total[t]) for t in frames)
        token_wrong.extend(not c for c in ok)
    out = {"spearman_cer": float("nan"), "auroc_token": float("nan")}
    if len(set(utt_cer)) > 1 and len(set(utt_var)) > 1:
        out["spearman_cer"] = float(spearmanr(utt_var, utt_cer).statistic)
    if 0 < sum(token_wrong) < len(token_wrong):
        out["auroc_token"] = float(roc_auc_score(token_wrong, token_var))
    return out
