"""LightHuBERT's two training stages (DESIGN §9) in the pretraining loop.

The supernet is the teacher's geometry at `supernet.num_layers` (deeper than the teacher: the
extra layers start random), initialised from the teacher's weights, so that stage 1 (the largest
subnet alone) starts from what pretraining learned instead of from scratch as in the paper: at
CPU budgets there is no time to relearn it. Stage 2 draws a subnet per micro-batch from the
loop's seeded generator. Each stage is one resumable run of `train.pretrain.train` with its own
state file; with zero steps a stage is skipped, and with both at zero every subnet is the
teacher's leading slice (the student `distill` cut before this stage existed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from hubert_ee.config import PretrainConfig, SupernetParams
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.student import init_from_teacher
from hubert_ee.models.supernet import SearchSpace
from hubert_ee.models.supernet_head import SupernetDistillModel
from hubert_ee.train import distributed
from hubert_ee.train.pretrain import PretrainResult, train
from hubert_ee.train.pretrain_data import PretrainData

STAGES = (("stage1", "largest"), ("stage2", "uniform"))


def search_space(sp: SupernetParams) -> SearchSpace:
    s = sp.space
    return SearchSpace(tuple(s.embed_dims), tuple(s.heads), tuple(s.ffn_ratios), tuple(s.depths))


def supernet_encoder(teacher: HubertEncoder, num_layers: int | None, seed: int) -> HubertEncoder:
    """The teacher's geometry at the supernet's depth, every tensor the teacher has copied."""
    cfg = replace(teacher.cfg, num_layers=num_layers or teacher.cfg.num_layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = HubertEncoder(cfg)
    init_from_teacher(encoder, teacher)
    return encoder


def loop_config(pt: PretrainConfig, sp: SupernetParams, steps: int) -> PretrainConfig:
    """`pretrain`'s loop (masks, clip, decay, amp, checkpointing) with the supernet's
    budget, lr and batches."""
    return pt.model_copy(
        update=dict(
            max_steps=steps,
            lr=sp.lr,
            warmup_steps=max(1, min(sp.warmup_steps, steps)),
            max_batch_seconds=sp.max_batch_seconds,
            eval_batches=sp.eval_batches,
            grad_accum=1,
        )
    )


@dataclass
class SupernetRun:
    model: SupernetDistillModel  # .encoder is the supernet
    results: dict[str, PretrainResult]  # per stage that ran


def train_supernet(
    teacher: HubertEncoder,
    sp: SupernetParams,
    pt: PretrainConfig,
    seed: int,
    data: PretrainData,
    valid: PretrainData | None,
    state_dir: Path,
    run_id: str,
    d: distributed.Dist,
    on_log: Callable[[dict], None] | None = None,
) -> SupernetRun:
    space = search_space(sp)
    encoder = supernet_encoder(teacher, sp.num_layers, seed)
    if not space.all(encoder.cfg):
        raise ValueError(
            f"supernet.space has no valid subnet of {encoder.cfg.embed_dim} x "
            f"{encoder.cfg.num_layers}: every width must be divisible by its heads and by "
            f"pos_conv_groups ({encoder.cfg.pos_conv_groups})"
        )
    torch.manual_seed(
        seed
    )  # the prediction head's init; dropout below (the loop restores it on resume)
    model = SupernetDistillModel(encoder.train(), teacher, space, sp.target_layers, "largest")
    results = {}
    for i, ((name, sample), steps) in enumerate(
        zip(STAGES, (sp.stage1_steps, sp.stage2_steps), strict=True)
    ):
        if steps == 0:
            continue
        model.sample = sample
        torch.manual_seed(seed + i)

        def log(row: dict, name: str = name) -> None:
            if on_log:
                on_log({"stage": name, **row})

        results[name] = train(
            model,
            data,
            valid,
            loop_config(pt, sp, steps),
            seed + i,
            state_dir / f"{name}.pt",
            f"{run_id}:{name}",
            d,
            log,
        )
    return SupernetRun(model, results)
