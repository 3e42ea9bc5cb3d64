"""Multi-domain uncertainty-matching distillation (Kim et al. 2021; DESIGN §7).

    L = (1 − α)·L_CTC  +  α·Σ_k r_k·(L_tok^k + β·L_unc^k)

over target-domain batches that mix labeled utterances (all terms) and, optionally, unlabeled
ones (teacher terms only: the CTC term averages over the labeled rows of the batch). Teacher
outputs come from the cached stores (hubert_ee/decode/teacher_outputs.py), frame-aligned with
the student (same 50 Hz framing; checked per utterance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from hubert_ee.data.asr_data import ASRData
from hubert_ee.data.vocab import CharVocab
from hubert_ee.features.store import FrameStore
from hubert_ee.models.ctc_model import CTCOutput
from hubert_ee.train.finetune import Objective
from hubert_ee.train.losses import (
    token_kd_loss,
    uncertain_ctc_loss,
    uncertainty_kd_loss,
    uncertainty_profile_loss,
    uncertainty_size_loss,
)


class KDData(ASRData):
    """Target-domain utterances (text optional) with every teacher's cached frames."""

    def __init__(
        self, manifest: pd.DataFrame, vocab: CharVocab, teacher_stores: list[list[FrameStore]]
    ):
        """teacher_stores[k] = the stores (one per split) of teacher k covering `manifest`."""
        labeled = manifest["text"].fillna("").astype(str).str.strip() != ""
        self.rows = manifest.reset_index(drop=True)
        self.vocab = vocab
        self.targets = [
            vocab.encode(t) if ok else torch.zeros(0, dtype=torch.long)
            for t, ok in zip(self.rows["text"].fillna(""), labeled.tolist(), strict=True)
        ]
        self.labeled = labeled.to_numpy()
        self.teachers = []
        for stores in teacher_stores:
            loc = {}
            for store in stores:
                for uid, (shard, first, n) in store.index().items():
                    loc[uid] = (store, shard, first, n)
            missing = [u for u in self.rows["id"] if u not in loc]
            if missing:
                raise ValueError(
                    f"{len(missing)} utterances (e.g. {missing[0]}) have no cached teacher outputs; "
                    "re-run the teacher_outputs stage"
                )
            self.teachers.append(loc)
        self._mmaps: dict[tuple[int, int], np.ndarray] = {}

    def __getstate__(self) -> dict:  # a worker maps the stores itself
        return {**super().__getstate__(), "_mmaps": {}}

    def teacher_frames(self, i: int, k: int) -> np.ndarray:
        store, shard, first, n = self.teachers[k][self.rows["id"].iat[i]]
        key = (id(store), shard)
        if key not in self._mmaps:
            self._mmaps[key] = store.shard(shard)[2]
        # a copy: torch.from_numpy of the read-only map warns that writes would be undefined
        return np.array(self._mmaps[key][first : first + n], dtype=np.float32)

    def __getitem__(self, i: int):
        return (
            self.wave(i),
            self.targets[i],
            [torch.from_numpy(self.teacher_frames(i, k)) for k in range(len(self.teachers))],
        )


def collate_kd(batch: list) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([len(w) for w, _, _ in batch])
    wave = torch.zeros(len(batch), int(lengths.max()))
    for i, (w, _, _) in enumerate(batch):
        wave[i, : len(w)] = w
    k = len(batch[0][2])
    frames = max(t.shape[0] for _, _, ts in batch for t in ts)
    classes = batch[0][2][0].shape[1] // 2
    teacher = torch.zeros(k, len(batch), frames, 2 * classes)
    for i, (_, _, ts) in enumerate(batch):
        for j, t in enumerate(ts):
            teacher[j, i, : t.shape[0]] = t
    return {
        "wave": wave,
        "lengths": lengths,
        "targets": torch.cat([t for _, t, _ in batch]),
        "target_lengths": torch.tensor([len(t) for _, t, _ in batch]),
        "teacher_logits": teacher[..., :classes],
        "teacher_variance": teacher[..., classes:],
        "teacher_frames": torch.tensor([[t.shape[0] for t in ts] for _, _, ts in batch]),
    }


@dataclass(frozen=True)
class KDConfig:
    alpha: float  # weight of the teacher terms (0 = student alone)
    beta: float  # weight of the uncertainty term inside each teacher's share (0 = token KD only)
    temperature: float
    teacher_weights: tuple[float, ...]  # r_k, summing to 1
    uncertainty_samples: int
    per_utterance: bool = False  # r_k from each teacher's uncertainty on the utterance
    per_frame: bool = False  # r_k from each teacher's uncertainty on the frame
    uncertainty_match: str = "classes"  # L_unc: classes (σ̂) | size | profile (log Σσ²)
    uncertainty_loss: str = "sequence"  # the student's CTC term (losses.uncertain_ctc_loss)


def teacher_weights(cfg: KDConfig, variance: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """r_k per utterance, (K, batch), or per frame, (K, batch, frames). Fixed weights, or with
    `per_utterance` the teachers that are surer of an utterance (lower mean Σ_c σ² over its
    frames) weigh more: r_k ∝ 1/ū_k; with `per_frame` likewise frame by frame, r_k,t ∝ 1/u_k,t.
    Restricted to the teachers whose fixed weight is non-zero."""
    k, b = variance.shape[0], variance.shape[1]
    fixed = torch.tensor(cfg.teacher_weights, dtype=torch.float32)[:, None].expand(k, b)
    if cfg.per_frame:  # u_k,t: Σ_c σ² of each frame, (K, batch, frames)
        u, on = variance.float().sum(-1), fixed[..., None] > 0
    elif cfg.per_utterance:  # ū_k: its mean over the utterance's valid frames, (K, batch)
        frames = valid.float().sum(1).clamp(min=1)  # (batch,)
        u, on = (variance.sum(-1) * valid[None].float()).sum(-1) / frames, fixed > 0
    else:
        return fixed
    inv = on.float() / u.clamp(min=1e-8)
    return inv / inv.sum(0, keepdim=True).clamp(min=1e-12)


def uncertainty_match_loss(kind: str):
    """L_unc^k by name (distill.uncertainty_match)."""
    losses = {
        "classes": uncertainty_kd_loss,
        "size": uncertainty_size_loss,
        "profile": uncertainty_profile_loss,
    }
    if kind not in losses:
        raise ValueError(f"unknown uncertainty_match {kind!r} (classes | size | profile)")
    return losses[kind]


def kd_objective(cfg: KDConfig) -> Objective:
    match = uncertainty_match_loss(cfg.uncertainty_match) if cfg.beta > 0 else None

    def objective(out: CTCOutput, batch: dict, gen) -> tuple[torch.Tensor, dict]:
        device = out.logits.device
        frames = out.logits.shape[1]
        teacher_frames = batch["teacher_frames"].to(device)
        if not bool((teacher_frames == out.frame_lengths[:, None]).all()):
            raise ValueError(
                "teacher and student frame counts differ: they must share the 50 Hz framing "
                f"(student {out.frame_lengths.tolist()}, teachers {teacher_frames.tolist()})"
            )
        valid = torch.arange(frames, device=device)[None] < out.frame_lengths[:, None]
        parts: dict[str, torch.Tensor] = {}
        loss = out.logits.new_zeros(())
        has_text = batch["target_lengths"] > 0
        if cfg.alpha < 1 and bool(has_text.any()):
            rows = has_text.nonzero().squeeze(1)
            ctc = uncertain_ctc_loss(
                cfg.uncertainty_loss,
                out.logits[rows],
                None if out.variance is None else out.variance[rows],
                out.frame_lengths[rows],
                batch["targets"].to(device),
                batch["target_lengths"][rows].to(device),
                cfg.uncertainty_samples,
                generator=gen,
            )
            loss = loss + (1 - cfg.alpha) * ctc
            parts["ctc"] = ctc.detach()
        if cfg.alpha > 0:
            weights = teacher_weights(cfg, batch["teacher_variance"][:, :, :frames], valid.cpu())
            kd = out.logits.new_zeros(())
            for k in range(len(cfg.teacher_weights)):
                r = weights[k].to(device)
                if not bool((r > 0).any()):
                    continue
                t_logits = batch["teacher_logits"][k, :, :frames].to(device)
                tok = token_kd_loss(out.logits, t_logits, valid, cfg.temperature, r)
                term = tok
                parts[f"tok_{k}"] = tok.detach()
                if match is not None:
                    if out.variance is None:
                        raise ValueError("uncertainty KD needs a student with an uncertainty head")
                    t_var = batch["teacher_variance"][k, :, :frames].to(device)
                    unc = match(out.variance, t_var, valid, r)
                    term = term + cfg.beta * unc
                    parts[f"unc_{k}"] = unc.detach()
                kd = kd + term
            loss = loss + cfg.alpha * kd
            parts["kd"] = kd.detach()
        return loss, parts

    return objective


def weak_teacher_warnings(
    teacher_dev_wer: dict[str, float], arm_dev_wer: dict[str, float], target: str
) -> list[str]:
    """A teacher no better on the target's dev split than the student trained alone pulls the
    student towards its errors (Kim et al.'s teachers beat the student on its own domain)."""
    alone = arm_dev_wer.get("student_only")
    if alone is None:
        return []
    return [
        f"teacher {d} has {target} dev WER {w:.3f}, no better than the student trained alone "
        f"({alone:.3f}): its KD terms teach its errors (lower its distill.teacher_weights, or give it "
        f"training data that sounds like {target})"
        for d, w in teacher_dev_wer.items()
        if w >= alone
    ]
