"""Stage `kmeans_iter<N>`: fit k-means on a subset of the fit splits, label every split,
score the labels against the phone alignments (purity, PNMI, domain PNMI). For N >= 2 the
MFCC features of iteration 1 are clustered at the same K on the same utterances too: the
HuBERT paper's claim is that the model's layer beats them (`pnmi_mfcc_same_k`)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hubert_ee.cluster.labelling import kmeans_labels
from hubert_ee.config import Params
from hubert_ee.data.manifest import load_split
from hubert_ee.data.prepare import resolve_workers
from hubert_ee.parallel import Executor
from hubert_ee.tracking import StageTracker
from tasks.common import iteration_stage_parser, run_stage, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    it, km = params.iterations[f"iter{args.iteration}"], params.kmeans
    dev = load_split(args.manifests, km.eval_split)
    common = dict(
        splits=params.features.splits,
        fit_splits=km.fit_splits,
        eval_split=km.eval_split,
        eval_manifest=dev,
        k=it.k,
        km=km,
        seed=params.seed,
        executor=Executor(
            params.orchestration.executor,
            resolve_workers(params.num_workers),
            params.orchestration.dask_address,
        ),
    )
    metrics = kmeans_labels(Path(args.features), Path(args.out), **common)
    if args.mfcc_features and "pnmi" in metrics:
        with tempfile.TemporaryDirectory() as tmp:
            mfcc = kmeans_labels(Path(args.mfcc_features), Path(tmp), **common)
        metrics["pnmi_mfcc_same_k"] = mfcc["pnmi"]
        metrics["domain_pnmi_mfcc_same_k"] = mfcc["domain_pnmi"]
    write_metrics(args.metrics, metrics, tracker)
    summary = (
        f"PNMI {metrics['pnmi']:.3f} on {km.eval_split} (domain PNMI {metrics['domain_pnmi']:.3f}"
        + (f"; MFCC at k={it.k}: {metrics['pnmi_mfcc_same_k']:.3f}" if args.mfcc_features else "")
        + ")"
        if "pnmi" in metrics
        else "no phone alignments to score"
    )
    print(f"labels in {args.out}/<split> (k={it.k}, {metrics['label_rate_hz']:g} Hz); {summary}")


if __name__ == "__main__":
    parser = iteration_stage_parser(__doc__)
    parser.add_argument("--features", required=True)
    parser.add_argument(
        "--mfcc-features", help="iteration 1's MFCC store: the same-K baseline (iterations >= 2)"
    )
    run_stage(
        main,
        parser,
        lambda a: f"kmeans_iter{a.iteration}",
        lambda a: [
            "seed",
            "num_workers",
            "features.splits",
            "kmeans",
            f"iterations.iter{a.iteration}",
            "orchestration.executor",
            "orchestration.dask_address",
        ],  # fmt: skip
    )
