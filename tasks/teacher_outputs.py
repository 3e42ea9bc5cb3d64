"""Stage `teacher_outputs`: every teacher's logits and variances on the target domain, once.

Distillation reads these memory-mapped stores in every epoch instead of running the teachers.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from hubert_ee.config import Params
from hubert_ee.data.manifest import load_split
from hubert_ee.decode.teacher_outputs import cache_split, distill_splits, teacher_paths
from hubert_ee.device import compute_device
from hubert_ee.models.checkpoint import load_ctc_model
from hubert_ee.tracking import StageTracker
from tasks.common import run_stage, stage_parser, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    target, dp = params.data.target_domain, params.distill
    out = Path(args.out)
    metrics: dict = {"bytes": {}, "frames": {}, "audio_hours": {}, "seconds": {}}
    for domain, path in teacher_paths(params.data.teacher_domains, args.teachers).items():
        model = load_ctc_model(path).to(compute_device())
        t0 = time.perf_counter()
        for split in distill_splits(params.distill.use_unlabeled):
            df = load_split(args.manifests, split)
            rows = df[df["domain"] == target]
            if rows.empty:
                raise ValueError(f"split {split!r} has no utterances of target domain {target!r}")
            store = cache_split(
                model, rows, out / domain / split, dp.teacher_output_shards,
                dp.eval_batch_seconds, f"teacher {domain} on {target}/{split}",
            )  # fmt: skip
            key = f"{domain}/{split}"
            metrics["bytes"][key] = sum(f.stat().st_size for f in store.dir.iterdir())
            metrics["frames"][key] = store.num_frames
            metrics["audio_hours"][key] = round(float(rows["duration"].sum()) / 3600, 4)
        metrics["seconds"][domain] = round(time.perf_counter() - t0, 1)
    metrics["total_mb"] = round(sum(metrics["bytes"].values()) / 2**20, 2)
    write_metrics(args.metrics, metrics, tracker)
    print(f"teacher outputs in {out}: {metrics['total_mb']} MB")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--teachers", required=True, help="models/teachers (one folder per domain)")
    parser.add_argument("--manifests", default="data/prepared")
    parser.add_argument("--out", required=True, help="data/teacher_outputs")
    parser.add_argument("--metrics", required=True)
    run_stage(
        main,
        parser,
        "teacher_outputs",
        [
            "data.teacher_domains",
            "data.target_domain",
            "distill.use_unlabeled",
            "distill.teacher_output_shards",
            "distill.eval_batch_seconds",
        ],
    )
