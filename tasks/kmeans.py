"""Stage `kmeans_iter<N>`: fit k-means on a subset of the fit splits, label every split,
score the labels against the phone alignments (purity, PNMI)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hubert_ee.cluster.kmeans import fit, sample_fit_frames
from hubert_ee.cluster.pseudo_labels import label_store, score
from hubert_ee.config import Params
from hubert_ee.data.manifest import load_split
from hubert_ee.features.store import FrameStore
from hubert_ee.tracking import StageTracker
from tasks.common import iteration_stage_parser, run_stage, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    it, km = params.iteration(args.iteration), params.kmeans
    feats, out = Path(args.features), Path(args.out)
    missing = [s for s in {*km.fit_splits, km.eval_split} if s not in params.features.splits]
    if missing:
        raise ValueError(f"kmeans uses splits {missing} that features.splits does not extract")
    x = sample_fit_frames(
        [FrameStore(feats / s) for s in km.fit_splits],
        km.fit_fraction,
        km.max_fit_frames,
        params.seed,
    )
    print(f"fitting k-means ({km.implementation}, k={it.k}) on {len(x)} frames x {x.shape[1]} dims")
    model = fit(km.implementation, x, it.k, km.max_iter, km.n_init, params.seed)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "centroids.npy", model.centroids)
    metrics: dict = {
        "k": it.k,
        "implementation": model.implementation,
        "fit_frames": len(x),
        "fit_seconds": round(model.seconds, 2),
        "fit_iterations": model.iterations,
        "inertia": round(model.inertia, 4),
    }
    for split in params.features.splits:
        meta, mean_d = label_store(FrameStore(feats / split), model.centroids, out / split)
        metrics[f"inertia/{split}"] = round(mean_d, 4)
    metrics["label_rate_hz"] = meta.frame_rate_hz
    quality = score(FrameStore(out / km.eval_split), load_split(args.manifests, km.eval_split))
    if quality:
        for key in ("pnmi", "phone_purity", "cluster_purity"):
            metrics[key] = round(quality["all"][key], 4)
        metrics.update({f"pnmi/{d}": round(q["pnmi"], 4) for d, q in quality.items() if d != "all"})
        metrics["num_phones"] = quality["all"]["num_phones"]
        metrics["scored_split"] = km.eval_split
    write_metrics(args.metrics, metrics, tracker)
    summary = (
        f"PNMI {metrics['pnmi']:.3f} on {km.eval_split}"
        if quality
        else "no phone alignments to score"
    )
    print(f"labels in {out}/<split> (k={it.k}, {meta.frame_rate_hz:g} Hz); {summary}")


if __name__ == "__main__":
    parser = iteration_stage_parser(__doc__)
    parser.add_argument("--features", required=True)
    run_stage(
        main,
        parser,
        lambda a: f"kmeans_iter{a.iteration}",
        ["seed", "features", "kmeans", "iterations"],
    )
