"""Stage `pretrain_iter<N>`: HuBERT masked-prediction pretraining on iteration N's labels.

With `pretrain.launcher: torchrun` and `pretrain.nproc` > 1 the program re-launches itself
under torchrun (DDP); `dvc repro` runs it the same way either way.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from hubert_ee.config import Params, ParamsError, load_params
from hubert_ee.data.manifest import load_split
from hubert_ee.models.checkpoint import save_encoder
from hubert_ee.models.pretrain_head import HubertPretrainModel
from hubert_ee.models.student import parameter_count
from hubert_ee.plots import history_with_csv
from hubert_ee.tracking import StageTracker
from hubert_ee.train import distributed
from hubert_ee.train.checkpointing import fingerprint
from hubert_ee.train.pretrain import LoopConfig, initial_encoder, pretrain_metrics, train
from hubert_ee.train.pretrain_data import PretrainData
from tasks.common import iteration_stage_parser, run_stage, write_metrics


def _relaunch_under_torchrun(params_path: str) -> None:
    """Before any tracking starts: the torchrun children do the work (rank 0 tracks)."""
    try:
        pt = load_params(params_path).pretrain
    except ParamsError:
        return  # run_stage reports it
    if pt.launcher == "torchrun":
        distributed.relaunch_under_torchrun(pt.nproc, "tasks.pretrain")


def _log_step(row: dict, tracker: StageTracker) -> None:
    print(json.dumps(row), flush=True)
    tracker.log_metrics({f"train/{k}": v for k, v in row.items() if k != "step"}, step=row["step"])


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    d = distributed.setup()
    if d.device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // d.world))
    pt, km = params.pretrain, params.kmeans
    torch.manual_seed(params.seed + args.iteration)
    previous = args.previous if pt.init_from_previous and args.iteration > 1 else None
    encoder = initial_encoder(params.model, args.iteration, previous)
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
    loop = LoopConfig.from_section(pt, params.seed)
    run_id = fingerprint({"stage": args.stage_key, "world": d.world})
    if d.main:
        n_params = parameter_count(encoder)
        print(
            f"pretraining iteration {args.iteration}: {n_params / 1e6:.2f}M-parameter encoder, K={data.num_classes}, {len(data)} utterances, {pt.max_steps} steps on {d.world} x {d.device}"
        )
    t0 = time.perf_counter()
    state = Path(args.state) / "last.pt"
    result = train(model, data, valid, loop, state, run_id, d, lambda r: _log_step(r, tracker))
    wall = time.perf_counter() - t0
    if d.main:
        out = Path(args.out)
        meta = {"iteration": args.iteration, "steps": result.steps, "k": data.num_classes}
        save_encoder(encoder, out / "encoder.safetensors", {k: str(v) for k, v in meta.items()})
        plots = Path(args.plots)
        columns = ["step", "loss", "masked_acc", "lr", "grad_norm"]
        history_with_csv(result.history, columns, plots, f"pretrain iteration {args.iteration}")
        metrics = pretrain_metrics(result, data.num_classes, pt.log_every)
        metrics.update(
            wall_s=round(wall, 1),
            world_size=d.world,
            resumed_from_step=result.resumed_from,
            k=data.num_classes,
        )
        write_metrics(args.metrics, metrics, tracker, plots)
        print(
            f"encoder in {out}/encoder.safetensors; valid masked accuracy {result.valid['masked_acc']:.3f} (chance {1 / data.num_classes:.3f})"
        )
    distributed.teardown()


if __name__ == "__main__":
    parser = iteration_stage_parser(__doc__, out_help="models/pretrain_iter<N>")
    parser.add_argument("--labels", required=True, help="data/labels/iter<N>")
    parser.add_argument(
        "--previous",
        help="the previous iteration's encoder (used with pretrain.init_from_previous)",
    )
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
        inputs=["labels", "manifests", "previous"],
    )
