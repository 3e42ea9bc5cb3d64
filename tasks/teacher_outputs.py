"""Stage `teacher_outputs`: every teacher's logits and variances on the target domain, once.

Distillation reads these memory-mapped stores in every epoch instead of running the teachers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hubert_ee.config import Params
from hubert_ee.decode.teacher_outputs import cache_teachers, distill_splits, teacher_paths
from hubert_ee.tracking import StageTracker
from tasks.common import run_stage, stage_parser, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    target, dp = params.data.target_domain, params.distill
    out = Path(args.out)
    teachers = teacher_paths(params.data.teacher_domains, args.teachers)
    splits = distill_splits(dp.use_unlabeled)
    metrics = cache_teachers(
        teachers,
        args.manifests,
        target,
        splits,
        out,
        dp.teacher_output_shards,
        dp.eval_batch_seconds,
    )
    write_metrics(args.metrics, metrics, tracker)
    print(f"teacher outputs in {out}: {metrics['total_mb']} MB")


if __name__ == "__main__":
    parser = stage_parser(__doc__, "teachers", "manifests", "metrics", out="data/teacher_outputs")
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
        all_threads=True,
    )
