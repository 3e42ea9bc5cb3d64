"""The masked-prediction pretraining loop: resumable, DDP-ready, bf16 autocast on GPU
(`pretrain.amp`, hubert_ee/device.py). One loop
for both objectives (`pretrain.objective`): HuBERT's (predict k-means labels) and wav2vec 2.0's
(contrastive against a quantiser of the front end; its distractors and Gumbel noise are drawn
from generators seeded like the masks).

One optimizer step consumes world × grad_accum length-bucketed micro-batches; rank r takes
micro-batches r·accum … r·accum+accum−1 of the step, so N ranks with accum 1 and one
process with accum N see the same data and the same masks (mask seeds depend on the step and
the micro-batch, not on the rank).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from hubert_ee.config import KMeansConfig, ModelConfig, PretrainConfig
from hubert_ee.data.batching import bucket_batches, padding_fraction, step_schedule
from hubert_ee.data.manifest import load_split
from hubert_ee.device import autocast
from hubert_ee.models.checkpoint import load_encoder
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.pretrain_head import HubertPretrainModel
from hubert_ee.models.quantizer import QuantizerConfig
from hubert_ee.models.student import parameter_count
from hubert_ee.models.supernet_head import SupernetDistillModel
from hubert_ee.models.wav2vec2_head import Wav2Vec2PretrainModel
from hubert_ee.train import distributed
from hubert_ee.train.checkpointing import load_state, save_state
from hubert_ee.train.masking import span_mask
from hubert_ee.train.optim import adamw_with_schedule
from hubert_ee.train.prefetch import prefetch
from hubert_ee.train.pretrain_data import PretrainData, collate


def _mask_generator(seed: int, step: int, micro: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 1009 + micro)


def _forward(
    model, batch: dict, mask: torch.Tensor, device: torch.device, amp: str, extra: dict
) -> dict:
    with autocast(amp, device):
        return model(
            batch["wave"].to(device),
            batch["lengths"].to(device),
            batch["labels"].to(device),
            mask.to(device),
            **extra,
        )


def _objective_inputs(model_core, seed: int, step: int, micro: int) -> dict:
    """What wav2vec 2.0's head needs besides the batch: the update (Gumbel temperature) and a
    generator for its distractors and noise; the supernet's, a generator that draws the
    subnet; nothing for HuBERT's."""
    if not isinstance(model_core, Wav2Vec2PretrainModel | SupernetDistillModel):
        return {}
    return {"step": step, "generator": _mask_generator(seed + 7919, step, micro)}


def _batch_mask(
    model_core: HubertPretrainModel, batch: dict, cfg: PretrainConfig, gen: torch.Generator
) -> torch.Tensor:
    frame_lengths = model_core.encoder.frame_lengths(batch["lengths"])
    return span_mask(frame_lengths, batch["labels"].shape[1], cfg.mask_prob, cfg.mask_span, gen)


@torch.no_grad()
def evaluate(
    model_core: HubertPretrainModel,
    data: PretrainData,
    cfg: PretrainConfig,
    seed: int,
    device: torch.device,
) -> dict[str, float]:
    """Masked-prediction loss and accuracy on held-out data, fixed batches and masks."""
    model_core.eval()
    lengths = data.lengths()
    batches = bucket_batches(lengths, int(cfg.max_batch_seconds * 16000), seed, epoch=0)[
        : cfg.eval_batches
    ]
    tot_loss = tot_acc = tot_n = 0.0
    for i, b in enumerate(batches):
        batch = collate([data[j] for j in b])
        mask = _batch_mask(model_core, batch, cfg, _mask_generator(seed + 1, 0, i))
        extra = _objective_inputs(model_core, seed + 1, 0, i)
        out = _forward(model_core, batch, mask, device, cfg.amp, extra)
        n = float(out["masked_frames"])
        tot_loss += float(out["loss"]) * n
        tot_acc += float(out["masked_acc"]) * n
        tot_n += n
    model_core.train()
    return {
        "loss": tot_loss / max(tot_n, 1),
        "masked_acc": tot_acc / max(tot_n, 1),
        "frames": tot_n,
    }


@dataclass
class PretrainResult:
    steps: int
    history: list[dict]
    valid: dict[str, float]
    audio_seconds_per_s: float
    padding_fraction: float
    resumed_from: int


def train(
    model_core: HubertPretrainModel,
    data: PretrainData,
    valid: PretrainData | None,
    cfg: PretrainConfig,
    seed: int,
    state_path: Path,
    run_fingerprint: str,
    d: distributed.Dist,
    on_log: Callable[[dict], None] | None = None,
) -> PretrainResult:
    device = d.device
    model_core.to(device).train()
    model = model_core
    if d.world > 1:
        model = DDP(
            model_core,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=model_core.encoder.cfg.layer_drop > 0
            or isinstance(model_core, SupernetDistillModel),  # a subnet leaves weights idle
        )

    def embedding(name: str) -> bool:  # target embeddings take no weight decay
        return "label_embeddings" in name or "codebook" in name

    trained = [(n, p) for n, p in model_core.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if p.ndim >= 2 and not embedding(n)]
    no_decay = [p for n, p in trained if p.ndim < 2 or embedding(n)]  # (a frozen teacher: none)
    opt, sched = adamw_with_schedule(
        decay, no_decay, cfg.lr, cfg.weight_decay, cfg.warmup_steps, cfg.max_steps, eps=1e-6
    )
    step, epoch, batch_pos, history = 0, 0, 0, []
    state = load_state(state_path, run_fingerprint)
    if state is not None:
        model_core.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step, epoch, batch_pos, history = (
            state["step"],
            state["epoch"],
            state["batch_pos"],
            state["history"],
        )
        if d.main:
            print(f"resumed from {state_path} at step {step}")
    resumed_from = step
    # throughput over the whole run, across resumes: (audio seconds, wall seconds) so far
    prev_audio, prev_wall = state.get("throughput", (0.0, 0.0)) if state else (0.0, 0.0)

    lengths = data.lengths()
    max_samples = int(cfg.max_batch_seconds * 16000)
    per_step = d.world * cfg.grad_accum
    first_epoch = bucket_batches(lengths, max_samples, seed, 0)
    pad_frac = padding_fraction(lengths, first_epoch)
    if len(first_epoch) < per_step:
        raise ValueError(
            f"the data gives fewer batches than one step needs ({per_step}); lower max_batch_seconds"
        )
    audio_s, t_start = 0.0, time.perf_counter()

    def save() -> None:
        if d.main:
            save_state(
                state_path,
                {
                    "model": model_core.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": torch.get_rng_state(),
                    "step": step,
                    "epoch": epoch,  # (epoch, batch_pos) = where the next step starts
                    "batch_pos": batch_pos,
                    "history": history,
                    "throughput": (prev_audio + audio_s, prev_wall + time.perf_counter() - t_start),
                    "fingerprint": run_fingerprint,
                },
            )
        distributed.barrier(d)

    def this_rank(schedule):  # (this rank's micro-batches, steps in the epoch) per step
        for group, steps_in_epoch in schedule:
            yield group[d.rank * cfg.grad_accum : (d.rank + 1) * cfg.grad_accum], steps_in_epoch

    loaded = prefetch(  # the audio of the next steps is read while this one trains
        this_rank(step_schedule(lengths, max_samples, seed, epoch, batch_pos, per_step)),
        lambda item: [collate([data[i] for i in idx]) for idx in item[0]],
    )
    while step < cfg.max_steps:
        (mine, steps_in_epoch), micro_batches = next(loaded)
        loss_sum = acc_sum = 0.0
        for j, batch in enumerate(micro_batches):
            mask = _batch_mask(
                model_core, batch, cfg, _mask_generator(seed, step, d.rank * cfg.grad_accum + j)
            )
            sync = (
                contextlib.nullcontext()
                if (d.world == 1 or j == len(mine) - 1)
                else model.no_sync()
            )
            extra = _objective_inputs(model_core, seed, step, d.rank * cfg.grad_accum + j)
            with sync:
                out = _forward(model, batch, mask, device, cfg.amp, extra)
                (out["loss"] / cfg.grad_accum).backward()
            loss_sum += float(out["loss"].detach())
            acc_sum += float(out["masked_acc"])
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model_core.parameters(), cfg.clip_norm))
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        batch_pos += 1
        if batch_pos >= steps_in_epoch:
            epoch, batch_pos = epoch + 1, 0
        loss, acc = distributed.all_mean([loss_sum / len(mine), acc_sum / len(mine)], d)
        (seconds,) = distributed.all_sum(
            [float(sum(int(lengths[i]) for b in mine for i in b)) / 16000], d
        )
        audio_s += seconds
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"loss became {loss} at step {step}; lower pretrain.lr or raise warmup_steps"
            )
        row = {
            "step": step,
            "loss": round(loss, 5),
            "masked_acc": round(acc, 5),
            "lr": sched.get_last_lr()[0],
            "grad_norm": round(grad_norm, 4),
        }
        history.append(row)
        if d.main and on_log and (step % cfg.log_every == 0 or step == cfg.max_steps):
            window = history[
                -(step - (step - 1) // cfg.log_every * cfg.log_every) :
            ]  # this log interval
            on_log(
                {
                    **row,
                    "loss": round(sum(r["loss"] for r in window) / len(window), 5),
                    "masked_acc": round(sum(r["masked_acc"] for r in window) / len(window), 5),
                }
            )
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
            save()
    wall = time.perf_counter() - t_start
    result_valid = evaluate(model_core, valid, cfg, seed, device) if valid is not None else {}
    return PretrainResult(
        step,
        history,
        result_valid,
        (prev_audio + audio_s) / (prev_wall + wall) if prev_wall + wall > 0 else 0.0,
        pad_frac,
        resumed_from,
    )


def initial_encoder(
    model: ModelConfig, iteration: int, previous: str | Path | None = None
) -> HubertEncoder:
    """The encoder an iteration starts from: `model.init_checkpoint` for iteration 1 when set,
    the previous iteration's encoder when `previous` is given (iteration >= 2 with
    `pretrain.init_from_previous`; DESIGN §5 allows it at CPU budgets), else random weights
    (the paper retrains every iteration from scratch). A loaded encoder must have the
    configuration params ask for."""
    cfg = model.encoder_config()
    source = model.init_checkpoint if iteration == 1 else previous
    if not source:
        return HubertEncoder(cfg)
    enc = load_encoder(source, cfg)
    if enc.cfg != cfg:
        raise ValueError(f"{source} has encoder config {enc.cfg}, params ask for {cfg}")
    return enc


def pretrain_metrics(result: PretrainResult, num_classes: int, log_every: int) -> dict:
    """metrics/pretrain_iter<N>.json (DESIGN §11): the last `log_every` steps' mean train loss
    and accuracy, and the held-out split's."""
    tail = result.history[-log_every:]

    def mean(key: str) -> float | None:  # None when no step ran (max_steps: 0)
        return round(sum(r[key] for r in tail) / len(tail), 4) if tail else None

    return {
        "loss": mean("loss"),
        "masked_acc": round(result.valid["masked_acc"], 4),
        "valid_loss": round(result.valid["loss"], 4),
        "train_masked_acc": mean("masked_acc"),
        "chance_acc": round(1 / num_classes, 4),
        "steps": result.steps,
        "audio_seconds_per_s": round(result.audio_seconds_per_s, 2),
        "padding_fraction": round(result.padding_fraction, 4),
    }


@dataclass
class IterationRun:
    encoder: HubertEncoder
    result: PretrainResult
    num_classes: int


def pretrain_iteration(
    model_cfg: ModelConfig,
    pt: PretrainConfig,
    km: KMeansConfig,
    seed: int,
    iteration: int,
    manifests: str | Path,
    labels: Path | None,
    previous: str | None,
    state_path: Path,
    run_fingerprint: str,
    d: distributed.Dist,
    on_log: Callable[[dict], None] | None = None,
) -> IterationRun:
    """One pretraining iteration: the encoder it starts from (`initial_encoder`), the objective
    (HuBERT's masked prediction of `labels`, or wav2vec 2.0's, which reads no labels) on the
    k-means fit splits, held-out loss and accuracy on the eval split. `num_classes` of the
    result: K, or 1 + the distractors (the contrastive task's chance is 1 / that)."""
    torch.manual_seed(seed + iteration)
    encoder = initial_encoder(
        model_cfg, iteration, previous if pt.init_from_previous and iteration > 1 else None
    )
    w2v = pt.objective == "wav2vec2"
    if not w2v and labels is None:
        raise ValueError("pretrain.objective: hubert needs --labels (a k-means label store)")
    data = PretrainData(
        [load_split(manifests, s) for s in km.fit_splits],
        None if w2v else [labels / s for s in km.fit_splits],
        encoder.cfg,
    )
    valid = PretrainData(
        [load_split(manifests, km.eval_split)], None if w2v else [labels / km.eval_split],
        encoder.cfg,
    )  # fmt: skip
    if w2v:
        o = pt.wav2vec2
        quantizer = QuantizerConfig(o.codebook_groups, o.codebook_entries, pt.final_dim, *o.temp)
        model = Wav2Vec2PretrainModel(
            encoder, quantizer, pt.final_dim, o.num_negatives, o.logit_temp, o.diversity_weight,
            o.feature_penalty_weight, pt.feature_grad_mult,
        )  # fmt: skip
        classes, target = o.num_negatives + 1, f"wav2vec 2.0 ({o.num_negatives} distractors)"
    else:
        model = HubertPretrainModel(
            encoder, data.num_classes, pt.final_dim, feature_grad_mult=pt.feature_grad_mult
        )
        classes, target = data.num_classes, f"K={data.num_classes}"
    if d.main:
        print(
            f"pretraining iteration {iteration}: {parameter_count(encoder) / 1e6:.2f}M-parameter "
            f"encoder, {target}, {len(data)} utterances, {pt.max_steps} steps on "
            f"{d.world} x {d.device}"
        )
    result = train(model, data, valid, pt, seed, state_path, run_fingerprint, d, on_log)
    return IterationRun(encoder, result, classes)
