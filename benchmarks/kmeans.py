"""k-means: faiss (the default), our torch Lloyd and the reference recipe (sklearn
MiniBatchKMeans, fairseq settings) on the same fit frames and K, in one process.

Arms: `sklearn` (20 inits, 100 iterations), `torch` (1 init, 100 iterations: its recipe before
faiss), `faiss` (the params' iterations and init), `faiss_100it` (100 iterations) and
`faiss_random` (random init instead of k-means++) and `faiss_256pc` (faiss's own default of at
most 256 fit points per centroid, i.e. a random subsample of the fit frames, which the stage
does not do). For each arm one JSON line: fit wall time,
peak extra memory during the fit, inertia (mean squared distance) on the fit frames and on the
held-out split, labelling speed (frames/s over the held-out split) and PNMI on it (labels
applied as the stage applies them); then
one line with the ratios. Needs the features of an iteration (`dvc repro features_iter1`).
Run: `python benchmarks/kmeans.py [--iteration 1] [--arms faiss,torch]`.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import psutil

from hubert_ee.cluster.kmeans import fit, fit_faiss, sample_fit_frames
from hubert_ee.cluster.pseudo_labels import label_store, score
from hubert_ee.config import load_params
from hubert_ee.data.manifest import load_split
from hubert_ee.features.store import FrameStore


class PeakRss:
    """Peak resident memory of this process while the block runs (sampled every 10 ms)."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.stop = False
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self):
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--iteration", type=int, default=1)
    ap.add_argument("--features", default=None, help="default: data/features/iter<N>")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--k", type=int, default=None, help="default: the iteration's k")
    ap.add_argument("--arms", default="sklearn,torch,faiss,faiss_100it,faiss_random")
    args = ap.parse_args()
    params = load_params(args.params)
    km = params.kmeans
    k = args.k or params.iterations[f"iter{args.iteration}"].k
    feats = Path(args.features or f"data/features/iter{args.iteration}")
    x = sample_fit_frames(
        [FrameStore(feats / s) for s in km.fit_splits],
        km.fit_fraction,
        km.max_fit_frames,
        params.seed,
    )
    eval_store = FrameStore(feats / km.eval_split)
    manifest = load_split(args.manifests, km.eval_split)
    arms = {
        # implementation, iterations, inits, init, at most this many fit points per centroid
        "sklearn": ("sklearn", 100, 20, "kmeans++", None),
        "torch": ("torch", 100, 1, "kmeans++", None),
        "faiss": ("faiss", km.max_iter, km.n_init, km.init, None),
        "faiss_100it": ("faiss", 100, km.n_init, km.init, None),
        "faiss_random": ("faiss", km.max_iter, km.n_init, "random", None),
        "faiss_256pc": ("faiss", km.max_iter, km.n_init, km.init, 256),
    }
    rows = {}
    for name in args.arms.split(","):
        impl, max_iter, n_init, init, per_centroid = arms[name]
        with PeakRss() as mem:
            if per_centroid:
                model = fit_faiss(x, k, max_iter, n_init, params.seed, init, per_centroid)
            else:
                model = fit(impl, x, k, max_iter, n_init, params.seed, init)
        out = Path(f"/tmp/hubert-ee-bench-kmeans-{name}")
        t0 = time.perf_counter()
        _, eval_inertia = label_store(eval_store, model.centroids, out, implementation=impl)
        label_s = time.perf_counter() - t0
        q = score(FrameStore(out), manifest)
        rows[name] = {
            "arm": name,
            "implementation": model.implementation,
            "reference": impl == "sklearn",
            "k": k,
            "max_iter": max_iter,
            "n_init": n_init,
            "init": init,
            "fit_frames": min(len(x), per_centroid * k) if per_centroid else len(x),
            "dim": int(x.shape[1]),
            "fit_seconds": round(model.seconds, 2),
            "fit_peak_extra_mb": round(mem.extra_mb, 1),
            "inertia_fit": round(model.inertia, 3),
            f"inertia_{km.eval_split}": round(eval_inertia, 3),
            # labelling every frame of the eval split (what the stage does to every split)
            "label_frames_per_s": round(eval_store.num_frames / max(label_s, 1e-9)),
            f"pnmi_{km.eval_split}": round(q["all"]["pnmi"], 4) if q else None,
        }
        print(json.dumps(rows[name]), flush=True)
    pnmi_key = f"pnmi_{km.eval_split}"
    summary = {}
    if "faiss" in rows:
        for other in ("torch", "sklearn"):
            if other in rows:
                summary[f"fit_speedup_faiss_over_{other}"] = round(
                    rows[other]["fit_seconds"] / max(rows["faiss"]["fit_seconds"], 1e-9), 2
                )
                if rows["faiss"][pnmi_key] is not None:
                    summary[f"pnmi_faiss_minus_{other}"] = round(
                        rows["faiss"][pnmi_key] - rows[other][pnmi_key], 4
                    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
