"""Synthesis speed of the built-in corpus, in × real time, on this machine.

Prints one JSON object: per-domain single-process speed (engine + augmentation), the engine
alone, and the end-to-end parallel speed of `synthesize` (fresh process per shard) for a plan
of --minutes of audio per domain. Run: `python benchmarks/prepare.py [--minutes 2]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from statistics import median

from hubert_ee.config import load_params
from hubert_ee.data.espeak import EspeakEngine
from hubert_ee.data.synthetic import CorpusPlanner, render, synthesize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument(
        "--minutes", type=float, default=2.0, help="audio per domain for the parallel run"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    params = load_params(args.params)
    syn = params.data.synthetic.model_copy(
        update={
            "train_hours": dict.fromkeys(params.data.domains, args.minutes / 60),
            "unlabeled_hours": 1e-6,
        }
    )
    specs = [
        s for s in CorpusPlanner(syn, params.data.domains, params.seed).plan() if s.split == "train"
    ]
    engine = EspeakEngine()
    report: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "domains": {}}
    for domain in params.data.domains:
        ds = [s for s in specs if s.domain == domain][:30]
        full, eng = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            audio_s = sum(len(render(s, engine)[0]) / 16000 for s in ds)
            t1 = time.perf_counter()
            for s in ds:
                engine.synthesize(s.text, s.voice, s.rate_wpm, s.pitch, s.pitch_range, s.seed)
            t2 = time.perf_counter()
            full.append(audio_s / (t1 - t0))
            eng.append(audio_s / (t2 - t1))
        report["domains"][domain] = {
            "x_realtime_one_core": round(median(full), 1),
            "engine_only_x_realtime": round(median(eng), 1),
        }
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        utts = synthesize(specs, Path(tmp), params.data.synthetic.shard_utterances, args.workers)
        wall = time.perf_counter() - t0
        import soundfile as sf

        audio_s = sum(sf.info(u.path).duration for u in utts)
    report["parallel"] = {
        "workers": args.workers,
        "audio_hours": round(audio_s / 3600, 3),
        "wall_s": round(wall, 2),
        "x_realtime": round(audio_s / wall, 1),
        "hours_of_audio_per_minute": round(audio_s / wall / 60, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
