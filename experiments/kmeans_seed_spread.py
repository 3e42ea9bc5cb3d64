"""Is iteration N's layer really better than MFCC at the same K, beyond k-means' own noise?

Re-runs the `kmeans_iter<N>` labelling (same params, fit sample and init drawn from each seed)
on the model-layer features and on iteration 1's MFCC, and prints one JSON object: dev PNMI,
target-domain PNMI and domain PNMI per seed and arm, with mean, spread (max - min) and the
per-seed difference layer - MFCC. Dev only.

Run: `python experiments/kmeans_seed_spread.py --iteration 2 --seeds 1,2,3
      --out experiments/results/kmeans_iter2_seed_spread.json`
`--k` clusters at another K than the iteration's (both arms), for a sweep over K.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from report import emit  # experiments/report.py (the script's folder is on sys.path)

from hubert_ee.cluster.labelling import kmeans_labels
from hubert_ee.config import load_params
from hubert_ee.data.manifest import load_split

KEYS = ("pnmi", "pnmi/phone", "domain_pnmi")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iteration", type=int, default=2)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--k", type=int, help="K for both arms (default: the iteration's)")
    ap.add_argument("--out")
    args = ap.parse_args()
    params = load_params(args.params)
    km, it = params.kmeans, params.iteration(args.iteration)
    k = args.k or it.k
    dev = load_split(args.manifests, km.eval_split)
    arms = {
        "layer": Path(f"data/features/iter{args.iteration}"),
        "mfcc": Path("data/features/iter1"),
    }
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: dict = {arm: {} for arm in arms}
    for seed in seeds:
        for arm, feats in arms.items():
            with tempfile.TemporaryDirectory() as tmp:
                m = kmeans_labels(
                    feats, Path(tmp), splits=params.features.splits, fit_splits=km.fit_splits,
                    eval_split=km.eval_split, eval_manifest=dev, k=k, km=km, seed=seed,
                )  # fmt: skip
            rows[arm][seed] = {k: m[k] for k in KEYS}
            print(json.dumps({"seed": seed, "arm": arm, **rows[arm][seed]}), flush=True)
    summary = {}
    for arm in arms:
        for key in KEYS:
            vals = [rows[arm][s][key] for s in seeds]
            summary[f"{arm}/{key}"] = {"mean": round(statistics.mean(vals), 4),
                                       "spread": round(max(vals) - min(vals), 4)}  # fmt: skip
    diff = [round(rows["layer"][s]["pnmi"] - rows["mfcc"][s]["pnmi"], 4) for s in seeds]
    report = {"iteration": args.iteration, "k": k, "seeds": seeds, "per_seed": rows,
              "summary": summary, "pnmi_layer_minus_mfcc": diff}  # fmt: skip
    emit(report, args.out)


if __name__ == "__main__":
    main()
