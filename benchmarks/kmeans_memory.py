"""Peak memory of k-means fitting + labelling as the feature store grows, fit subset fixed.

Writes random 39-d stores of increasing size (shards of --shard-frames), then in a fresh
process per size runs what `kmeans_iter<N>` does (sample the fit subset, fit, label every
shard) and reports the process's peak RSS. Bounded means: the peak does not grow with the store.
Run: `python benchmarks/kmeans_memory.py [--sizes 1 4 8]` (millions of frames).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hubert_ee.features.store import StoreMeta, write_shard

CHILD = """
import json, resource, sys
from pathlib import Path
from hubert_ee.cluster.kmeans import fit, sample_fit_frames
from hubert_ee.cluster.pseudo_labels import label_store
from hubert_ee.features.store import FrameStore
store_dir, fit_frames, k = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
store = FrameStore(store_dir)
x = sample_fit_frames([store], 0.1, fit_frames, seed=0)
model = fit("torch", x, k, 20, 1, 0)
label_store(store, model.centroids, store_dir.parent / "labels")
print(json.dumps({"fit_frames": len(x), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_store(
    directory: Path, frames: int, shard_frames: int, dim: int = 39, utt_frames: int = 300
) -> float:
    n_shards = max(1, frames // shard_frames)
    StoreMeta("random", dim, "float32", 100.0, n_shards, {"hop": 160, "window": 400}).write(
        directory
    )
    rng = np.random.default_rng(0)
    per_shard = frames // n_shards // utt_frames
    for i in range(n_shards):
        arrays = [
            rng.standard_normal((utt_frames, dim), dtype=np.float32) for _ in range(per_shard)
        ]
        write_shard(
            directory, i, n_shards, [f"s{i}u{j}" for j in range(per_shard)], arrays, "float32"
        )
    return sum(p.stat().st_size for p in directory.glob("*.npy")) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--sizes", type=float, nargs="+", default=[1, 4, 8], help="store sizes, millions of frames"
    )
    ap.add_argument("--fit-frames", type=int, default=100_000)
    ap.add_argument("--shard-frames", type=int, default=500_000)
    ap.add_argument("--k", type=int, default=100)
    args = ap.parse_args()
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store_mb = make_store(Path(tmp) / "store", int(size * 1e6), args.shard_frames)
            out = subprocess.run(
                [sys.executable, "-c", CHILD, f"{tmp}/store", str(args.fit_frames), str(args.k)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row.update(
                store_frames=int(size * 1e6),
                store_mb=round(store_mb, 1),
                fit_subset_mb=round(row["fit_frames"] * 39 * 4 / 2**20, 1),
            )
            row["store_over_subset"] = round(row["store_mb"] / row["fit_subset_mb"], 1)
            row["peak_rss_mb"] = round(row["peak_rss_mb"], 1)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
