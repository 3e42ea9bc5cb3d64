"""Training objective of the exit branches (HuBERT-EE; DESIGN §8).

two_stage: the student is frozen; each branch learns CTC on the labels, plus (kd_weight > 0)
frame-level KL towards the final layer's posteriors. joint: the final head's CTC joins the sum
(λ = 1 for every branch) and the backbone trains too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from hubert_ee.config import ExitsParams
from hubert_ee.data.asr_data import ASRData, collate_asr
from hubert_ee.data.batching import bucket_batches
from hubert_ee.decode.ctc import greedy_decode
from hubert_ee.device import compute_device
from hubert_ee.metrics.wer import cer, wer
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.early_exit import EarlyExitModel, ExitConfig, ExitOutput
from hubert_ee.models.student import parameter_count
from hubert_ee.train.finetune import FinetuneResult, Objective, finetune
from hubert_ee.train.losses import ctc_loss, sampled_ctc_loss, token_kd_loss


def exit_objective(mode: str, kd_weight: float, temperature: float, samples: int) -> Objective:
    if mode not in ("two_stage", "joint"):
        raise ValueError(f"exits.mode must be two_stage or joint, got {mode!r}")

    def objective(out: ExitOutput, batch: dict, gen) -> tuple[torch.Tensor, dict]:
        device = out.logits.device
        targets = batch["targets"].to(device)
        tlen = batch["target_lengths"].to(device)
        frames = out.logits.shape[1]
        valid = torch.arange(frames, device=device)[None] < out.frame_lengths[:, None]
        parts: dict[str, torch.Tensor] = {}
        loss = out.logits.new_zeros(())
        for layer, logits in out.exits.items():
            branch = ctc_loss(logits, out.frame_lengths, targets, tlen)
            parts[f"ctc_exit{layer}"] = branch.detach()
            loss = loss + branch
            if kd_weight > 0:
                kd = token_kd_loss(logits, out.logits.detach(), valid, temperature)
                parts[f"kd_exit{layer}"] = kd.detach()
                loss = loss + kd_weight * kd
        if mode == "joint":
            final = sampled_ctc_loss(
                out.logits, out.variance, out.frame_lengths, targets, tlen, samples, generator=gen
            )
            parts["ctc_final"] = final.detach()
            loss = loss + final
        return loss, parts

    return objective


@torch.no_grad()
def exit_scores(
    model: EarlyExitModel, data: ASRData, max_batch_seconds: float
) -> dict[int, dict[str, float]]:
    """Greedy WER and CER of every exit (and the final head) when all utterances leave there."""
    was = model.training
    model.eval()
    hyps: dict[int, list[str]] = {}
    order: list[int] = []
    for idx in bucket_batches(data.lengths(), int(max_batch_seconds * 16000), seed=0, epoch=0):
        batch = collate_asr([data[i] for i in idx])
        device = next(model.parameters()).device
        out = model(batch["wave"].to(device), batch["lengths"].to(device))
        for layer, logits in {**out.exits, model.num_layers: out.logits}.items():
            hyps.setdefault(layer, []).extend(
                greedy_decode(logits.log_softmax(-1), out.frame_lengths, data.vocab)
            )
        order.extend(idx)
    model.train(was)
    refs = [data.texts()[i] for i in order]
    return {layer: {"wer": wer(refs, h), "cer": cer(refs, h)} for layer, h in sorted(hyps.items())}


def mean_exit_wer(max_batch_seconds: float):
    """Early-stopping score: mean WER over the branches (the final head is fixed in two_stage)."""

    def score(model: EarlyExitModel, dev: ASRData) -> dict[str, float]:
        s = exit_scores(model, dev, max_batch_seconds)
        branches = [v for layer, v in s.items() if layer != model.num_layers]
        return {
            "wer": sum(v["wer"] for v in branches) / len(branches),
            "cer": sum(v["cer"] for v in branches) / len(branches),
        }

    return score


def exit_config(ex: ExitsParams, num_layers: int) -> ExitConfig:
    """Branches after `exits.layers` (null: every Transformer layer but the last)."""
    layers = ex.layers if ex.layers is not None else list(range(1, num_layers))
    if not layers:
        raise ValueError(
            f"the student has {num_layers} Transformer layer(s): no layer below the last for an "
            "exit branch; give it 2 or more (supernet.space.depths, distill.student)"
        )
    return ExitConfig(
        tuple(layers), ex.branch, ex.branch_dim, ex.branch_heads, ex.branch_ffn, ex.branch_dropout
    )


@dataclass
class ExitsRun:
    mode: str  # exits.mode
    model: EarlyExitModel
    result: FinetuneResult
    dev: dict[int, dict[str, float]]  # exit layer (the last = the final head) → WER, CER
    test: dict[int, dict[str, float]]

    def metrics(self) -> dict:
        """metrics/exits.json (DESIGN §11)."""
        m = self.model
        return {
            "mode": self.mode,
            "exit_layers": list(m.cfg.layers),
            "num_layers": m.num_layers,
            "wer_dev": {str(k): round(v["wer"], 5) for k, v in self.dev.items()},
            "wer": {str(k): round(v["wer"], 5) for k, v in self.test.items()},
            "cer": {str(k): round(v["cer"], 5) for k, v in self.test.items()},
            "params_branches": sum(parameter_count(b) for b in m.branches.values()),
            "params_student": parameter_count(m.student),
            "steps": self.result.steps,
            "best_step": self.result.best["step"],
        }

    def table(self) -> list[list]:
        """(layer, dev WER, test WER) rows: plots/exits.csv."""
        return [
            [layer, round(self.dev[layer]["wer"], 5), round(self.test[layer]["wer"], 5)]
            for layer in self.dev
        ]


def train_exits(
    ex: ExitsParams,
    uncertainty_samples: int,
    seed: int,
    student: CTCModel,
    splits: dict[str, ASRData],
    state_path: Path,
    run_fingerprint: str,
    on_log: Callable[[dict], None],
) -> ExitsRun:
    """Branches on `student` trained by the CTC loop on `splits["train"]`, early-stopped on
    the branches' mean dev WER, then every exit scored on dev and test."""
    student.train()
    torch.manual_seed(seed)
    model = EarlyExitModel(student, exit_config(ex, student.encoder.cfg.num_layers))
    if ex.mode == "two_stage":
        model.freeze_backbone()
    print(f"training exit branches after layers {list(model.cfg.layers)} ({ex.mode})")
    objective = exit_objective(ex.mode, ex.kd_weight, ex.kd_temperature, uncertainty_samples)
    result = finetune(
        model,
        splits["train"],
        splits["dev"],
        ex,
        seed,
        state_path,
        run_fingerprint,
        compute_device(),
        on_log,
        objective=objective,
        score_dev=mean_exit_wer(ex.eval_batch_seconds),
    )
    model.eval()
    scores = {s: exit_scores(model, splits[s], ex.eval_batch_seconds) for s in ("dev", "test")}
    return ExitsRun(ex.mode, model, result, scores["dev"], scores["test"])
