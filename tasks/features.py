"""Stage `features_iter<N>`: frame features of every configured split into sharded stores."""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

from hubert_ee.config import Params
from hubert_ee.data.manifest import load_split
from hubert_ee.data.prepare import resolve_workers
from hubert_ee.features.extract import extract_split
from hubert_ee.features.mfcc import MfccSource
from hubert_ee.models.layer_features import LayerSource, layer_workers
from hubert_ee.tracking import StageTracker
from tasks.common import iteration_stage_parser, run_stage, write_metrics


def source_factory(params: Params, iteration: int, checkpoint: str | None):
    """A picklable zero-argument constructor of the iteration's feature source (extract_split
    calls it in the main process first, so a bad checkpoint or layer fails before any worker)."""
    it = params.iterations[f"iter{iteration}"]
    if it.features == "mfcc":
        return MfccSource
    if checkpoint is None:
        raise ValueError(
            f"iterations.iter{iteration} uses layer {it.layer} of the previous model: pass --checkpoint "
            "(the previous iteration's encoder, .safetensors)"
        )
    return partial(LayerSource, checkpoint, it.layer)


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    make_source = source_factory(params, args.iteration, args.checkpoint)
    it = params.iterations[f"iter{args.iteration}"]
    name = "mfcc" if it.features == "mfcc" else f"layer{it.layer}"
    workers = resolve_workers(params.num_workers)
    if it.features == "layer":
        workers = layer_workers(workers)
    metrics: dict = {"splits": {}}
    for split in params.features.splits:
        manifest = load_split(args.manifests, split)
        t0 = time.perf_counter()
        meta = extract_split(
            make_source,
            manifest,
            Path(args.out) / split,
            params.features.num_shards,
            workers,
            params.features.float16,
            desc=f"{name} {split}",
            normalize=params.features.cmvn,
        )
        seconds = time.perf_counter() - t0
        audio_s = float(manifest["duration"].sum())
        metrics["splits"][split] = {
            "utterances": len(manifest),
            "audio_hours": round(audio_s / 3600, 4),
            "x_realtime": round(audio_s / seconds, 1),
        }
    metrics.update(
        source=meta.source,
        dim=meta.dim,
        frame_rate_hz=meta.frame_rate_hz,
        workers=workers,
        cmvn=params.features.cmvn,
    )
    write_metrics(args.metrics, metrics, tracker)
    print(
        f"features ({meta.source}, {meta.dim}-d, {meta.frame_rate_hz:g} Hz) in {args.out}/<split>"
    )


if __name__ == "__main__":
    parser = iteration_stage_parser(__doc__)
    parser.add_argument("--checkpoint", help="previous iteration's encoder (iterations >= 2)")
    run_stage(
        main,
        parser,
        lambda a: f"features_iter{a.iteration}",
        lambda a: ["num_workers", "features", f"iterations.iter{a.iteration}"],
    )
