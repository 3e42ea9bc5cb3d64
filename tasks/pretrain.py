"""Stage `pretrain_iter<N>`: HuBERT masked-prediction pretraining on iteration N's labels, or
wav2vec 2.0's contrastive objective (`pretrain.objective`), which reads no labels.

With `pretrain.launcher: torchrun` and `pretrain.nproc` > 1 the program re-launches itself
under torchrun (DDP); `dvc repro` runs it the same way either way.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hubert_ee.config import Params, ParamsError, load_params
from hubert_ee.device import cpu_threads
from hubert_ee.models.checkpoint import save_encoder
from hubert_ee.plots import history_with_csv
from hubert_ee.tracking import StageTracker
from hubert_ee.train import distributed
from hubert_ee.train.checkpointing import fingerprint
from hubert_ee.train.pretrain import pretrain_iteration, pretrain_metrics
from tasks.common import STANDARD_PATHS, iteration_stage_parser, run_stage, write_metrics


def _log_step(row: dict, tracker: StageTracker) -> None:
    print(json.dumps(row), flush=True)
    tracker.log_metrics({f"train/{k}": v for k, v in row.items() if k != "step"}, step=row["step"])


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    d = distributed.setup()
    if d.device.type == "cpu":
        torch.set_num_threads(max(1, cpu_threads() // d.world))
    pt, it = params.pretrain, args.iteration
    run_id = fingerprint({"stage": args.stage_key, "world": d.world})
    t0 = time.perf_counter()
    run = pretrain_iteration(
        params.model,
        pt,
        params.kmeans,
        params.seed,
        it,
        args.manifests,
        Path(args.labels) if args.labels else None,
        args.previous,
        Path(args.state) / "last.pt",
        run_id,
        d,
        lambda r: _log_step(r, tracker),
    )
    wall = time.perf_counter() - t0
    if d.main:
        out, plots, k = Path(args.out), Path(args.plots), run.num_classes
        meta = {"iteration": it, "steps": run.result.steps, "k": k}
        # absent = hubert, so HuBERT encoders and metrics keep their bytes
        objective = {} if pt.objective == "hubert" else {"objective": pt.objective}
        meta.update(objective)
        save_encoder(run.encoder, out / "encoder.safetensors", {a: str(v) for a, v in meta.items()})
        columns = ["step", "loss", "masked_acc", "lr", "grad_norm"]
        history_with_csv(run.result.history, columns, plots, f"pretrain iteration {it}")
        metrics = pretrain_metrics(run.result, k, pt.log_every)
        metrics.update(
            wall_s=round(wall, 1),
            world_size=d.world,
            k=k,
            **objective,
            resumed_from_step=run.result.resumed_from,
        )
        write_metrics(args.metrics, metrics, tracker, plots)
        print(
            f"encoder in {out}/encoder.safetensors; valid masked accuracy "
            f"{run.result.valid['masked_acc']:.3f} (chance {1 / k:.3f})"
        )
    distributed.teardown()


if __name__ == "__main__":
    parser = iteration_stage_parser(__doc__, out_help="models/pretrain_iter<N>")
    parser.add_argument(
        "--labels", help="data/labels/iter<N> (objective hubert; wav2vec2 reads none)"
    )
    parser.add_argument("--previous", help="the previous iteration's encoder (init_from_previous)")
    parser.add_argument("--state", required=True, help=STANDARD_PATHS["state"])
    parser.add_argument("--plots", required=True, help="per-step CSV for dvc plots (+ PNG)")
    try:  # before any tracking starts: the torchrun children do the work (rank 0 tracks)
        pt = load_params(parser.parse_args().params).pretrain
        if pt.launcher == "torchrun":
            topology = distributed.Topology.from_env(pt.nproc, pt.nnodes, pt.rdzv_endpoint)
            distributed.relaunch_under_torchrun(topology, "tasks.pretrain")
    except ParamsError:
        pass  # run_stage reports it
    except ValueError as e:  # a node rank or rendezvous that cannot work: say so, start nothing
        raise SystemExit(f"pretrain: {e}") from None
    run_stage(
        main,
        parser,
        lambda a: f"pretrain_iter{a.iteration}",
        ["seed", "model", "pretrain", "kmeans.fit_splits", "kmeans.eval_split"],
        inputs=["labels", "manifests", "previous"],
    )
