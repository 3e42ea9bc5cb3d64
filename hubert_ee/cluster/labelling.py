"""One k-means labelling run: fit on a sample of the fit splits, label every split shard by
shard, score the held-out split against the phone alignments (PNMI, purity, domain PNMI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hubert_ee.cluster.kmeans import fit, sample_fit_frames
from hubert_ee.cluster.pseudo_labels import label_store, score
from hubert_ee.features.store import FrameStore
from hubert_ee.parallel import Executor


def kmeans_labels(
    features: Path,
    out: Path,
    splits: list[str],
    fit_splits: list[str],
    eval_split: str,
    eval_manifest: pd.DataFrame,
    k: int,
    km,  # the kmeans params section: implementation, init, fit_fraction, max_fit_frames, ...
    seed: int,
    executor: Executor | None = None,
) -> dict:
    """Writes `out/centroids.npy` and a label store per split; returns the metrics (DESIGN §11).
    The fit runs here; labelling runs shard by shard here or on a Dask `executor`."""
    missing = [s for s in {*fit_splits, eval_split} if s not in splits]
    if missing:
        raise ValueError(f"kmeans uses splits {missing} that features.splits does not extract")
    x = sample_fit_frames(
        [FrameStore(features / s) for s in fit_splits], km.fit_fraction, km.max_fit_frames, seed
    )
    print(f"fitting k-means ({km.implementation}, k={k}) on {len(x)} frames x {x.shape[1]} dims")
    model = fit(km.implementation, x, k, km.max_iter, km.n_init, seed, km.init)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "centroids.npy", model.centroids)
    metrics: dict = {
        "k": k,
        "implementation": model.implementation,
        "fit_frames": len(x),
        "fit_seconds": round(model.seconds, 2),
        "fit_iterations": model.iterations,
        "inertia": round(model.inertia, 4),
    }
    for split in splits:
        meta, mean_d = label_store(
            FrameStore(features / split), model.centroids, out / split,
            implementation=model.implementation, executor=executor,
        )  # fmt: skip
        metrics[f"inertia/{split}"] = round(mean_d, 4)
    metrics["label_rate_hz"] = meta.frame_rate_hz
    quality = score(FrameStore(out / eval_split), eval_manifest)
    if quality:
        for key in ("pnmi", "phone_purity", "cluster_purity", "domain_pnmi"):
            metrics[key] = round(quality["all"][key], 4)
        metrics.update({f"pnmi/{d}": round(q["pnmi"], 4) for d, q in quality.items() if d != "all"})
        metrics["num_phones"] = quality["all"]["num_phones"]
        metrics["scored_split"] = eval_split
    return metrics
