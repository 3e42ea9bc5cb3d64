"""Teacher outputs for distillation, computed once and stored memory-mapped (DESIGN §7).

One store per teacher and split (hubert_ee/features/store.py layout): per frame the plain
logits f_t and the variances σ²_t side by side, (frames, 2·classes), at the teachers' 50 Hz
frame rate. float32 (`STORE_DTYPE`): in float16 a σ² below ≈ 6e-5 loses its precision and
below ≈ 3e-8 becomes 0, and σ̂ = σ²/‖σ²‖ is matched on exactly those small values (DESIGN §6).
A killed run resumes at the first missing shard, and only a store of the same teacher weights
and rows: another one's shards are deleted first (features/store.py, `producer`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from hubert_ee.data.audio_io import read_mono_16k
from hubert_ee.data.batching import bucket_batches
from hubert_ee.data.manifest import load_split
from hubert_ee.device import compute_device
from hubert_ee.features.store import FrameStore, StoreMeta, open_store, shard_complete, write_shard
from hubert_ee.models.checkpoint import load_ctc_model, weights_digest
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.provenance import rows_digest

STORE_DTYPE = "float32"


@torch.no_grad()
def teacher_frames(model: CTCModel, waves: list[np.ndarray]) -> list[np.ndarray]:
    """(frames, 2·classes) [logits | σ²] per utterance, one padded batch."""
    if model.variance_head is None:
        raise ValueError("the teacher has no uncertainty head; fine-tune it with uncertainty: true")
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = torch.from_numpy(w)
    device = next(model.parameters()).device
    out = model(batch.to(device), lengths.to(device))
    both = torch.cat([out.logits, out.variance], dim=-1).float().cpu().numpy()
    return [both[i, : int(n)] for i, n in enumerate(out.frame_lengths)]


def cache_split(
    model: CTCModel,
    rows: pd.DataFrame,
    out_dir: Path,
    num_shards: int,
    batch_seconds: float,
    desc: str,
) -> FrameStore:
    """Write (or finish) the store of `rows` under out_dir; utterances are split into shards
    by position, so the store is the same for any batch size."""
    model.eval()
    rows = rows.reset_index(drop=True)
    source_rows = rows[["id", "path", "start", "duration", "num_samples"]].itertuples(index=False)
    meta = StoreMeta(
        source="teacher_outputs",
        dim=2 * model.head.out_features,
        dtype=STORE_DTYPE,
        frame_rate_hz=16000 / model.encoder.cfg.stride,
        num_shards=num_shards,
        extra={"classes": model.head.out_features, "layout": "logits|variance"},
        producer=f"{weights_digest(model)}:{rows_digest(source_rows)}",
    )
    open_store(out_dir, meta)
    parts = np.array_split(np.arange(len(rows)), num_shards)
    for i in tqdm(range(num_shards), desc=desc, unit="shard"):
        if shard_complete(out_dir, i, num_shards):
            continue
        part = rows.iloc[parts[i]]
        waves = [
            read_mono_16k(r.path, float(r.start), float(r.duration))[: int(r.num_samples)]
            for r in part.itertuples()
        ]
        arrays: list[np.ndarray | None] = [None] * len(waves)
        lengths = np.array([len(w) for w in waves], dtype=np.int64)
        for idx in bucket_batches(lengths, int(batch_seconds * 16000), seed=0, epoch=0):
            for j, a in zip(idx, teacher_frames(model, [waves[j] for j in idx]), strict=True):
                arrays[j] = a
        write_shard(out_dir, i, num_shards, part["id"].tolist(), arrays, STORE_DTYPE)
    return FrameStore(out_dir)


def teacher_paths(teacher_domains: list[str], teachers_dir: str | Path) -> dict[str, Path]:
    """<teachers_dir>/<domain>/model.safetensors for every teacher domain, all present."""
    paths = {d: Path(teachers_dir) / d / "model.safetensors" for d in teacher_domains}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"no teacher model at {missing}; run the finetune@<domain> stages first (dvc repro)"
        )
    return paths


def distill_splits(use_unlabeled: bool) -> list[str]:
    """The target-domain splits the teachers label for distillation."""
    return ["train", "unlabeled"] if use_unlabeled else ["train"]


def cache_teachers(
    teachers: dict[str, Path],
    manifests: str | Path,
    target: str,
    splits: list[str],
    out: Path,
    num_shards: int,
    max_batch_seconds: float,
) -> dict:
    """Every teacher's [logits | σ²] on the target domain's `splits`, one store per teacher and
    split under `out`/<teacher>/<split>; metrics/teacher_outputs.json (bytes, frames, hours per
    store, seconds per teacher)."""
    target_rows = {}
    for split in splits:  # read once, checked before any teacher is loaded
        df = load_split(manifests, split)
        target_rows[split] = df[df["domain"] == target]
        if target_rows[split].empty:
            raise ValueError(f"split {split!r} has no utterances of target domain {target!r}")
    metrics: dict = {"bytes": {}, "frames": {}, "audio_hours": {}, "seconds": {}}
    for domain, path in teachers.items():
        model = load_ctc_model(path).to(compute_device())
        t0 = time.perf_counter()
        for split, rows in target_rows.items():
            store = cache_split(
                model,
                rows,
                out / domain / split,
                num_shards,
                max_batch_seconds,
                f"teacher {domain} on {target}/{split}",
            )
            key = f"{domain}/{split}"
            metrics["bytes"][key] = sum(f.stat().st_size for f in store.dir.iterdir())
            metrics["frames"][key] = store.num_frames
            metrics["audio_hours"][key] = round(float(rows["duration"].sum()) / 3600, 4)
        metrics["seconds"][domain] = round(time.perf_counter() - t0, 1)
    metrics["total_mb"] = round(sum(metrics["bytes"].values()) / 2**20, 2)
    return metrics
