"""CTC fine-tuning loop (DESIGN §6): resumable, early stopping on dev WER, best model kept.

Schedule (fairseq's wav2vec 2.0 / HuBERT fine-tuning recipes, scaled down): the CNN front end
never trains; for the first `freeze_encoder_steps` only the output heads train (a randomly
initialised head would otherwise push large gradients into the pretrained Transformer); then
the Transformer trains at `encoder_lr_scale` x the heads' lr, so that what pretraining learned
is adapted rather than overwritten (`schedule: tri_stage` is fairseq's warm-up/hold/decay);
time masks (with the encoder's pretrained mask embedding) and channel masks on the projected
features act as SpecAugment. Every `eval_every` steps the
dev WER (greedy) is measured; the best model so far is kept in the resume state, and training
stops after `patience` evaluations without improvement (counted once the model has left the
all-blank plateau, CER < 1). The forward pass runs under bf16 autocast where `amp` says
(hubert_ee/device.py); the objective and the dev evaluation run in fp32.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from hubert_ee.config import CTCLoop, CTCTrainParams
from hubert_ee.data.asr_data import ASRData, collate_asr
from hubert_ee.data.batching import bucket_batches
from hubert_ee.decode.emissions import emissions, greedy_scores
from hubert_ee.device import autocast, float32_outputs
from hubert_ee.models.ctc_model import CTCModel, CTCOutput
from hubert_ee.train.checkpointing import load_state, save_state
from hubert_ee.train.losses import uncertain_ctc_loss
from hubert_ee.train.masking import span_mask
from hubert_ee.train.optim import adamw_with_schedule

Objective = Callable[[CTCOutput, dict, torch.Generator], tuple[torch.Tensor, dict]]


def ctc_objective(samples: int, mode: str = "sequence") -> Objective:
    def objective(out: CTCOutput, batch: dict, gen) -> tuple[torch.Tensor, dict]:
        device = out.logits.device
        loss = uncertain_ctc_loss(
            mode,
            out.logits,
            out.variance,
            out.frame_lengths,
            batch["targets"].to(device),
            batch["target_lengths"].to(device),
            samples,
            generator=gen,
        )
        return loss, {}

    return objective


def masks(
    model: CTCModel, lengths: torch.Tensor, cfg: CTCLoop, gen: torch.Generator
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(time mask (batch, frames), channel mask (batch, dim)) for one training batch."""
    frame_lengths = model.encoder.frame_lengths(lengths)
    frames = int(frame_lengths.max())
    time_mask = channel_mask = None
    if cfg.mask_time_prob > 0:
        time_mask = span_mask(
            frame_lengths, frames, cfg.mask_time_prob, cfg.mask_time_span, gen, min_spans=0
        )
    if cfg.mask_channel_prob > 0:
        dim = model.encoder.cfg.embed_dim
        channel_mask = span_mask(
            torch.full((len(lengths),), dim),
            dim,
            cfg.mask_channel_prob,
            cfg.mask_channel_span,
            gen,
            min_spans=0,
        )
    return time_mask, channel_mask


def _encoder_trainable(model: CTCModel, flag: bool) -> None:
    for p in model.encoder.encoder.parameters():
        p.requires_grad_(flag)
    model.encoder.mask_embedding.requires_grad_(flag)


def dev_scores(
    model: CTCModel, dev: ASRData, max_batch_seconds: float, device: torch.device
) -> dict[str, float]:
    return greedy_scores(emissions(model, dev, max_batch_seconds, device), dev)


@dataclass
class FinetuneResult:
    steps: int
    history: list[dict]
    evals: list[dict]
    best: dict
    stopped_early: bool
    audio_seconds_per_s: float
    resumed_from: int


def finetune(
    model: CTCModel,
    data: ASRData,
    dev: ASRData,
    cfg: CTCLoop,
    seed: int,
    state_path: Path,
    run_fingerprint: str,
    device: torch.device,
    on_log: Callable[[dict], None] | None = None,
    objective: Objective | None = None,
    collate: Callable[[list], dict] = collate_asr,
    score_dev: Callable[[torch.nn.Module, ASRData], dict[str, float]] | None = None,
    stop_at: int | None = None,
) -> FinetuneResult:
    """Train in place; on return `model` holds the best (lowest dev WER) weights.

    `cfg` is the stage's params section (or a copy with an arm's fields replaced:
    `CTCLoop.with_fields`); `seed` draws the batches and masks.

    `model(wave, lengths, time_mask, channel_mask)` gives a CTCOutput; `objective` maps it
    and the batch to (loss, {name: logged value}) (default: the CTC likelihood integrated
    over the uncertainty samples; distillation and the exit branches pass their own); `score_dev` gives the dev
    WER/CER that early stopping follows (default: greedy on the model's final head).
    `stop_at` pauses after that step (dev-scored, state saved); a later call with the same
    state path continues on the same schedule (the lr probes of `lr_choice`).
    """
    if objective is None:
        if not isinstance(cfg, CTCTrainParams):
            raise TypeError("finetune: pass an objective for a loop section without a CTC model's")
        objective = ctc_objective(cfg.noise_samples, cfg.uncertainty_loss)
    score_dev = score_dev or (lambda m, d: dev_scores(m, d, cfg.max_batch_seconds, device))
    model.to(device).train()
    for p in model.encoder.feature_extractor.parameters():
        p.requires_grad_(False)
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    params = [p for p in model.parameters() if p.requires_grad]  # frozen parts stay out
    heads = [p for p in params if id(p) not in encoder_ids]
    body = [p for p in params if id(p) in encoder_ids]
    opt, sched = adamw_with_schedule(
        [p for p in heads if p.ndim >= 2],
        [p for p in heads if p.ndim < 2],
        cfg.lr,
        cfg.weight_decay,
        cfg.warmup_steps,
        cfg.max_steps,
        eps=1e-8,
        schedule=cfg.schedule,
        scaled=(
            [p for p in body if p.ndim >= 2],
            [p for p in body if p.ndim < 2],
            cfg.encoder_lr_scale,
        ),
    )
    step, epoch, batch_pos = 0, 0, 0
    history: list[dict] = []
    evals: list[dict] = []
    best: dict = {"wer": math.inf, "cer": math.inf, "step": 0}
    best_state: dict | None = None
    stale = 0
    state = load_state(state_path, run_fingerprint)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step, epoch, batch_pos = state["step"], state["epoch"], state["batch_pos"]
        history, evals, best, stale = (
            state["history"],
            state["evals"],
            state["best"],
            state["stale"],
        )
        best_state = state["best_model"]
        print(f"resumed from {state_path} at step {step}")
    resumed_from = step
    # throughput over the whole run, across resumes: (audio seconds, wall seconds) so far
    prev_audio, prev_wall = state.get("throughput", (0.0, 0.0)) if state else (0.0, 0.0)

    def save() -> None:
        save_state(
            state_path,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": torch.get_rng_state(),
                "step": step,
                "epoch": epoch,
                "batch_pos": batch_pos,
                "history": history,
                "evals": evals,
                "best": best,
                "best_model": best_state,
                "stale": stale,
                "throughput": (prev_audio + audio_s, prev_wall + time.perf_counter() - t_start),
                "fingerprint": run_fingerprint,
            },
        )

    lengths = data.lengths()
    max_samples = int(cfg.max_batch_seconds * 16000)
    batches, batches_epoch = [], -1
    audio_s, t_start = 0.0, time.perf_counter()
    stopped_early = stale >= cfg.patience
    last = cfg.max_steps if stop_at is None else min(stop_at, cfg.max_steps)
    while step < last and not stopped_early:
        if batches_epoch != epoch:
            batches, batches_epoch = bucket_batches(lengths, max_samples, seed, epoch), epoch
            if hasattr(data, "set_epoch"):  # augmentation draws per epoch
                data.set_epoch(epoch)
        idx = batches[batch_pos]
        batch = collate([data[i] for i in idx])
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        time_mask, channel_mask = masks(model, batch["lengths"], cfg, gen)
        if cfg.freeze_encoder_steps:  # heads only at first: no gradient into the encoder
            _encoder_trainable(model, step >= cfg.freeze_encoder_steps)
        with autocast(cfg.amp, device):
            out = model(
                batch["wave"].to(device),
                batch["lengths"].to(device),
                None if time_mask is None else time_mask.to(device),
                None if channel_mask is None else channel_mask.to(device),
            )
        out = float32_outputs(out)  # the objective (CTC, KD terms) runs in fp32
        loss, parts = objective(out, batch, gen)
        loss.backward()
        trainable = [p for p in model.parameters() if p.grad is not None]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, cfg.clip_norm))
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        batch_pos += 1
        if batch_pos >= len(batches):
            epoch, batch_pos = epoch + 1, 0
        loss_v = float(loss.detach())
        if not math.isfinite(loss_v):
            raise FloatingPointError(
                f"CTC loss became {loss_v} at step {step}; lower finetune.lr or raise warmup_steps"
            )
        audio_s += float(lengths[idx].sum()) / 16000
        row = {
            "step": step,
            "loss": round(loss_v, 5),
            "lr": sched.get_last_lr()[0],
            "grad_norm": round(grad_norm, 4),
        }
        row.update({k: round(float(v), 5) for k, v in parts.items()})
        if out.variance is not None:
            row["mean_variance"] = round(float(out.variance.detach().mean()), 5)
        history.append(row)
        if step % cfg.eval_every == 0 or step in (cfg.max_steps, last):
            scores = score_dev(model, dev)
            evals.append({"step": step, **{k: round(v, 5) for k, v in scores.items()}})
            if (scores["wer"], scores["cer"]) < (best["wer"], best["cer"]):
                best = {"step": step, **scores}
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                stale = 0
            elif best["cer"] < 1.0:  # on the all-blank plateau nothing has been learned yet:
                stale += 1  # patience starts counting once the model emits something
            stopped_early = stale >= cfg.patience
            if on_log:
                on_log(
                    {**row, "dev_wer": round(scores["wer"], 5), "dev_cer": round(scores["cer"], 5)}
                )
            save()
    wall = time.perf_counter() - t_start
    if best_state is not None:
        model.load_state_dict(best_state)
    return FinetuneResult(
        step,
        history,
        evals,
        best,
        stopped_early,
        (prev_audio + audio_s) / (prev_wall + wall) if prev_wall + wall > 0 else 0.0,
        resumed_from,
    )
