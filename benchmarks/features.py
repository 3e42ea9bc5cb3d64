"""Feature extraction speed in × real time: MFCC (iteration 1) on one core and through the
sharded multi-process extractor, on the prepared corpus.

Run: `python benchmarks/features.py [--split dev]` (needs `dvc repro prepare`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from statistics import median

import torch

from hubert_ee.data.audio_io import read_mono_16k
from hubert_ee.data.manifest import load_split
from hubert_ee.features.extract import extract_split
from hubert_ee.features.mfcc import MfccSource


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--utterances", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    m = load_split(args.manifests, args.split).head(args.utterances)
    audio_s = float(m["duration"].sum())
    waves = [read_mono_16k(r.path, r.start, r.duration) for r in m.itertuples()]
    torch.set_num_threads(1)
    src = MfccSource()
    one_core = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for w in waves:
            src(w)
        one_core.append(audio_s / (time.perf_counter() - t0))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        extract_split(
            MfccSource,
            m,
            Path(tmp) / "s",
            num_shards=max(args.workers, 1) * 2,
            workers=args.workers,
        )
        parallel = audio_s / (time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "source": "mfcc",
                "audio_seconds": round(audio_s, 1),
                "x_realtime_one_core_compute_only": round(median(one_core), 1),
                "x_realtime_parallel_with_io": round(parallel, 1),
                "workers": args.workers,
            }
        )
    )


if __name__ == "__main__":
    main()
