"""Stage `features_iter<N>`: frame features of every configured split into sharded stores."""

from __future__ import annotations

import argparse
from pathlib import Path

from hubert_ee.config import Params
from hubert_ee.data.prepare import resolve_workers
from hubert_ee.features.extract import extract_splits
from hubert_ee.models.layer_features import feature_source, feature_workers
from hubert_ee.parallel import Executor
from hubert_ee.tracking import StageTracker
from tasks.common import iteration_stage_parser, run_stage, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    name = f"iter{args.iteration}"
    it, fp = params.iterations[name], params.features
    make_source = feature_source(it, name, args.checkpoint)
    orch = params.orchestration
    workers = Executor(
        orch.executor, feature_workers(it, resolve_workers(params.num_workers)), orch.dask_address
    )
    label = "mfcc" if it.features == "mfcc" else f"layer{it.layer}"
    metrics = extract_splits(
        make_source,
        args.manifests,
        fp.splits,
        Path(args.out),
        fp.num_shards,
        workers,
        fp.float16,
        fp.cmvn,
        label,
    )
    write_metrics(args.metrics, metrics, tracker)
    print(
        f"features ({metrics['source']}, {metrics['dim']}-d, {metrics['frame_rate_hz']:g} Hz) "
        f"in {args.out}/<split>"
    )


if __name__ == "__main__":
    parser = iteration_stage_parser(__doc__)
    parser.add_argument("--checkpoint", help="previous iteration's encoder (iterations >= 2)")
    run_stage(
        main,
        parser,
        lambda a: f"features_iter{a.iteration}",
        lambda a: [
            "num_workers",
            "features",
            f"iterations.iter{a.iteration}",
            "orchestration.executor",
            "orchestration.dask_address",
        ],  # fmt: skip
    )
