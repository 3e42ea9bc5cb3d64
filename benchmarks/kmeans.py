"""k-means: ours (torch Lloyd) vs the reference recipe (sklearn MiniBatchKMeans, fairseq
settings) on the same fit frames and K, in one process.

For each implementation prints one JSON line: fit wall time, peak extra memory during the fit,
inertia (mean squared distance) on the fit frames and on the held-out split, and PNMI on the
held-out split; then one line with the ratios. Needs the features of an iteration (run
`dvc repro features_iter1` first). Run: `python benchmarks/kmeans.py [--iteration 1]`.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import psutil

from hubert_ee.cluster.kmeans import fit, sample_fit_frames
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
    args = ap.parse_args()
    params = load_params(args.params)
    km = params.kmeans
    k = args.k or params.iteration(args.iteration).k
    feats = Path(args.features or f"data/features/iter{args.iteration}")
    x = sample_fit_frames(
        [FrameStore(feats / s) for s in km.fit_splits],
        km.fit_fraction,
        km.max_fit_frames,
        params.seed,
    )
    eval_store = FrameStore(feats / km.eval_split)
    manifest = load_split(args.manifests, km.eval_split)
    rows = {}
    for impl, n_init in (("sklearn", 20), ("torch", km.n_init)):
        with PeakRss() as mem:
            model = fit(impl, x, k, km.max_iter, n_init, params.seed)
        out = Path(f"/tmp/hubert-ee-bench-kmeans-{impl}")
        _, eval_inertia = label_store(eval_store, model.centroids, out)
        q = score(FrameStore(out), manifest)
        rows[impl] = {
            "implementation": impl,
            "reference": impl == "sklearn",
            "k": k,
            "n_init": n_init,
            "fit_frames": len(x),
            "dim": int(x.shape[1]),
            "fit_seconds": round(model.seconds, 2),
            "fit_peak_extra_mb": round(mem.extra_mb, 1),
            "inertia_fit": round(model.inertia, 3),
            f"inertia_{km.eval_split}": round(eval_inertia, 3),
            f"pnmi_{km.eval_split}": round(q["all"]["pnmi"], 4) if q else None,
        }
        print(json.dumps(rows[impl]))
    ours, ref = rows["torch"], rows["sklearn"]
    pnmi_key = f"pnmi_{km.eval_split}"
    print(
        json.dumps(
            {
                "fit_time_ratio_ref_over_ours": round(
                    ref["fit_seconds"] / max(ours["fit_seconds"], 1e-9), 2
                ),
                "inertia_ratio_ours_over_ref": round(ours["inertia_fit"] / ref["inertia_fit"], 4),
                "pnmi_diff_ours_minus_ref": None
                if ours[pnmi_key] is None
                else round(ours[pnmi_key] - ref[pnmi_key], 4),
                "peak_mb_ratio_ours_over_ref": round(
                    ours["fit_peak_extra_mb"] / max(ref["fit_peak_extra_mb"], 1e-9), 2
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
