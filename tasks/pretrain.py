"""Stage `pretrain_iter<N>`: HuBERT masked-prediction pretraining on iteration N's labels.

With `pretrain.launcher: torchrun` and `pretrain.nproc` > 1 the program re-launches itself
under torchrun (DDP); `dvc repro` runs it the same way either way.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch

from hubert_ee.config import Params, ParamsError, load_params
from hubert_ee.data.manifest import load_split
from hubert_ee.models.checkpoint import load_encoder, save_encoder
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.pretrain_head import HubertPretrainModel
from hubert_ee.plots import training_curves
from hubert_ee.tracking import StageTracker
from hubert_ee.train import distributed
from hubert_ee.train.checkpointing import fingerprint
from hubert_ee.train.pretrain import LoopConfig, train
from hubert_ee.train.pretrain_data import PretrainData
from tasks.common import iteration_stage_parser, run_stage, write_metrics


def _relaunch_under_torchrun(params_path: str) -> None:
    """Before any tracking starts: the torchrun children do the work (rank 0 tracks)."""
    try:
        params = load_params(params_path)
    except ParamsError:
        return  # run_stage reports it
    if (
        params.pretrain.launcher == "torchrun"
        and params.pretrain.nproc > 1
        and "WORLD_SIZE" not in os.environ
    ):
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={params.pretrain.nproc}",
            "-m",
            "tasks.pretrain",
            *sys.argv[1:],
        ]
        print("launching:", " ".join(cmd), flush=True)
        os.execv(sys.executable, cmd)


def _log_step(row: dict, tracker: StageTracker) -> None:
    print(json.dumps(row), flush=True)
    tracker.log_metrics({f"train/{k}": v for k, v in row.items() if k != "step"}, step=row["step"])


def build_encoder(params: Params, iteration: int) -> HubertEncoder:
    cfg = params.model.encoder_config()
    if iteration == 1 and params.model.init_checkpoint:
        enc = load_encoder(params.model.init_checkpoint, cfg)
        if enc.cfg != cfg:
            raise ValueError(
                f"{params.model.init_checkpoint} has encoder config {enc.cfg}, params ask for {cfg}"
            )
        return enc
    return HubertEncoder(cfg)  # iteration >= 2 retrains from scratch (DESIGN §5)


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    d = distributed.setup()
    if d.device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // d.world))
    pt, km = params.pretrain, params.kmeans
    torch.manual_seed(params.seed + args.iteration)
    encoder = build_encoder(params, args.iteration)
    labels = Path(args.labels)
    data = PretrainData(
        [load_split(args.manifests, s) for s in km.fit_splits],
        [labels / s for s in km.fit_splits],
        encoder.cfg,
    )
    valid = PretrainData(
        [load_split(args.manifests, km.eval_split)], [labels / km.eval_split], encoder.cfg
    )
    model = HubertPretrainModel(
        encoder, data.num_classes, pt.final_dim, feature_grad_mult=pt.feature_grad_mult
    )
    loop = LoopConfig(
        max_steps=pt.max_steps, max_batch_seconds=pt.max_batch_seconds, grad_accum=pt.grad_accum, lr=pt.lr,
        warmup_steps=pt.warmup_steps, weight_decay=pt.weight_decay, clip_norm=pt.clip_norm, mask_prob=pt.mask_prob,
        mask_span=pt.mask_span, checkpoint_every=pt.checkpoint_every, log_every=pt.log_every,
        eval_batches=pt.eval_batches, seed=params.seed, amp=pt.amp,
    )  # fmt: skip
    run_id = fingerprint({"stage": args.stage_key, "world": d.world})
    if d.main:
        n_params = sum(p.numel() for p in encoder.parameters())
        print(
            f"pretraining iteration {args.iteration}: {n_params / 1e6:.2f}M-parameter encoder, K={data.num_classes}, {len(data)} utterances, {pt.max_steps} steps on {d.world} x {d.device}"
        )
    t0 = time.perf_counter()
    result = train(
        model,
        data,
        valid,
        loop,
        Path(args.state) / "last.pt",
        run_id,
        d,
        on_log=lambda r: _log_step(r, tracker),
    )
    wall = time.perf_counter() - t0
    if d.main:
        out = Path(args.out)
        save_encoder(
            encoder,
            out / "encoder.safetensors",
            {
                "iteration": str(args.iteration),
                "steps": str(result.steps),
                "k": str(data.num_classes),
            },
        )
        plots = Path(args.plots)
        plots.parent.mkdir(parents=True, exist_ok=True)
        with open(plots, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", "loss", "masked_acc", "lr", "grad_norm"])
            w.writeheader()
            w.writerows(result.history)
        if result.history:
            training_curves(
                result.history,
                ["loss", "masked_acc"],
                plots.with_suffix(".png"),
                f"pretrain iteration {args.iteration}",
            )
        tail = result.history[-pt.log_every :]

        def mean(key: str) -> float | None:  # None when no step ran (max_steps: 0)
            return round(sum(r[key] for r in tail) / len(tail), 4) if tail else None

        write_metrics(
            args.metrics,
            {
                "loss": mean("loss"),
                "masked_acc": round(result.valid["masked_acc"], 4),
                "valid_loss": round(result.valid["loss"], 4),
                "train_masked_acc": mean("masked_acc"),
                "chance_acc": round(1 / data.num_classes, 4),
                "steps": result.steps,
                "audio_seconds_per_s": round(result.audio_seconds_per_s, 2),
                "padding_fraction": round(result.padding_fraction, 4),
                "wall_s": round(wall, 1),
                "world_size": d.world,
                "resumed_from_step": result.resumed_from,
                "k": data.num_classes,
            },
            tracker,
        )
        tracker.log_artifact(plots)
        tracker.log_artifact(plots.with_suffix(".png"))
        print(
            f"encoder in {out}/encoder.safetensors; valid masked accuracy {result.valid['masked_acc']:.3f} (chance {1 / data.num_classes:.3f})"
        )
    distributed.teardown()


if __name__ == "__main__":
    parser = iteration_stage_parser(__doc__, out_help="models/pretrain_iter<N>")
    parser.add_argument("--labels", required=True, help="data/labels/iter<N>")
    parser.add_argument("--state", required=True, help="resume state directory (kept across runs)")
    parser.add_argument(
        "--plots", required=True, help="per-step CSV for dvc plots (a PNG is written beside it)"
    )
    _relaunch_under_torchrun(parser.parse_args().params)
    run_stage(
        main,
        parser,
        lambda a: f"pretrain_iter{a.iteration}",
        ["seed", "model", "pretrain", "kmeans.fit_splits", "kmeans.eval_split"],
        inputs=["labels", "manifests"],
    )
