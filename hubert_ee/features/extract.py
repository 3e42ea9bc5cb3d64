"""Sharded feature extraction over worker processes (a local pool or a Dask cluster).

The split is cut into a fixed number of shards (params), independent of the worker count; each
shard is one work unit (hubert_ee/parallel.py) on a worker with one intra-op thread, so N
workers use N cores without oversubscription and every executor writes the same bytes. Shards
already on disk are skipped, so a killed extraction resumes where it stopped; shards made by
another source (`identity`: e.g. another checkpoint's weights) or from other rows are deleted
first (features/store.py, `producer`).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from hubert_ee.data.audio_io import read_mono_16k
from hubert_ee.data.manifest import load_split
from hubert_ee.features.normalize import cmvn
from hubert_ee.features.store import StoreMeta, open_store, shard_complete, write_shard
from hubert_ee.parallel import Executor, run_units
from hubert_ee.provenance import rows_digest


class FeatureSource(Protocol):
    name: str
    dim: int
    frame_rate_hz: float
    window: int  # samples in a frame's receptive field
    hop: int  # samples between frames
    identity: str  # what its frames are made from (name, settings, weights digest)

    def num_frames(self, num_samples: int) -> int: ...
    def __call__(self, wave: np.ndarray) -> np.ndarray: ...


class FrameCountError(ValueError):
    """A source produced a different number of frames than its framing rule predicts."""


@dataclass(frozen=True)
class Utt:
    id: str
    path: str
    start: float
    duration: float


def utterances(manifest: pd.DataFrame) -> list[Utt]:
    return [Utt(r.id, r.path, float(r.start), float(r.duration)) for r in manifest.itertuples()]


def compute(source: FeatureSource, utt: Utt, normalize: bool = False) -> np.ndarray:
    wave = read_mono_16k(utt.path, utt.start, utt.duration)
    feats = source(wave)
    expected = source.num_frames(len(wave))
    if feats.shape[0] != expected:
        raise FrameCountError(
            f"utterance {utt.id}: {source.name} gave {feats.shape[0]} frames for {len(wave)} samples, "
            f"framing rule says {expected}"
        )
    return cmvn(feats) if normalize else feats


_SOURCES: dict[bytes, FeatureSource] = {}


def _source(make_source: Callable[[], FeatureSource]) -> FeatureSource:
    """The worker process's source, built once per factory (a layer source loads a model)."""
    key = pickle.dumps(make_source)
    if key not in _SOURCES:
        _SOURCES.clear()
        _SOURCES[key] = make_source()
    return _SOURCES[key]


def _run_shard(job: tuple) -> int:
    make_source, i, n, utts, out_dir, dtype, normalize = job
    source = _source(make_source)
    arrays = [compute(source, u, normalize) for u in utts]
    write_shard(Path(out_dir), i, n, [u.id for u in utts], arrays, dtype)
    return len(utts)


def extract_split(
    make_source: Callable[[], FeatureSource],
    manifest: pd.DataFrame,
    out_dir: Path,
    num_shards: int,
    workers: int | Executor,
    float16: bool = False,
    desc: str = "features",
    normalize: bool = False,
) -> StoreMeta:
    """Extract features of every utterance in `manifest` into the store at `out_dir`, each
    utterance CMV-normalised when `normalize` (DESIGN §4); `workers`: a local pool's size, or
    where the shards run."""
    ex = workers if isinstance(workers, Executor) else Executor("local", workers)
    source = make_source()
    dtype = "float16" if float16 else "float32"
    utts = utterances(manifest)
    meta = StoreMeta(
        source.name,
        source.dim,
        dtype,
        source.frame_rate_hz,
        num_shards,
        {"window": source.window, "hop": source.hop, "cmvn": normalize},
        f"{source.identity}:{rows_digest((u.id, u.path, u.start, u.duration) for u in utts)}",
    )
    open_store(out_dir, meta)
    chunks = np.array_split(np.arange(len(utts)), num_shards)
    jobs = [
        (make_source, i, num_shards, [utts[j] for j in idx], str(out_dir), dtype, normalize)
        for i, idx in enumerate(chunks)
        if not shard_complete(out_dir, i, num_shards)
    ]
    todo = sum(len(j[3]) for j in jobs)
    with tqdm(total=len(utts), initial=len(utts) - todo, desc=desc, unit="utt") as bar:
        for done in run_units(_run_shard, jobs, ex):
            bar.update(done)
    return meta


def extract_splits(
    make_source: Callable[[], FeatureSource],
    manifests: str | Path,
    splits: list[str],
    out_dir: Path,
    num_shards: int,
    workers: int | Executor,
    float16: bool,
    normalize: bool,
    name: str,
) -> dict:
    """Every split's store under `out_dir`/<split>; metrics/features_iter<N>.json (DESIGN §11):
    per split its utterances, hours and speed (× real time), and the source's shape."""
    metrics: dict = {"splits": {}}
    for split in splits:
        manifest = load_split(manifests, split)
        t0 = time.perf_counter()
        meta = extract_split(
            make_source,
            manifest,
            out_dir / split,
            num_shards,
            workers,
            float16,
            desc=f"{name} {split}",
            normalize=normalize,
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
        workers=workers.workers if isinstance(workers, Executor) else workers,
        cmvn=normalize,
    )
    return metrics
