"""Apply a fitted k-means to feature stores (shard by shard) and score the labels."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hubert_ee.cluster.kmeans import assign
from hubert_ee.cluster.metrics import cluster_quality, joint_counts
from hubert_ee.cluster.phones import frame_phones
from hubert_ee.features.store import FrameStore, StoreMeta, write_shard
from hubert_ee.parallel import Executor, run_units


def _nearest(implementation: str, centroids: np.ndarray):
    """x (n, D) float32 → (nearest centroid, squared distance): faiss's flat L2 index when
    the centroids came from faiss, else our chunked matmul (the same exact search)."""
    if implementation.startswith("faiss"):
        import faiss

        index = faiss.IndexFlatL2(centroids.shape[1])
        index.add(np.ascontiguousarray(centroids, dtype=np.float32))

        def search(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            d, i = index.search(np.ascontiguousarray(x), 1)
            return i[:, 0], np.maximum(d[:, 0], 0)

        return search
    c = torch.from_numpy(centroids)

    def search_torch(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lab, d = assign(torch.from_numpy(x), c)
        return lab.numpy(), d.numpy()

    return search_torch


def _label_shard(job: tuple) -> tuple[int, float, int]:
    """One shard's labels written next to the others; (shard, Σ squared distance, frames)."""
    features_dir, i, num_shards, centroids, out_dir, dtype, implementation, chunk = job
    ids, lengths, data = FrameStore(features_dir).shard(i)
    nearest = _nearest(implementation, centroids)
    labels = np.empty(len(data), dtype=np.int64)
    total_d = 0.0
    for s in range(0, len(data), chunk):  # bounded memory: one chunk of the memmap at a time
        lab, d = nearest(np.array(data[s : s + chunk], dtype=np.float32))
        labels[s : s + chunk] = lab
        total_d += float(d.astype(np.float64).sum())
    splits = np.split(labels, np.cumsum(lengths)[:-1]) if len(ids) else []
    write_shard(Path(out_dir), i, num_shards, ids, splits, dtype)
    return i, total_d, len(labels)


def label_store(
    features: FrameStore,
    centroids: np.ndarray,
    out_dir: Path,
    chunk: int = 262_144,
    implementation: str = "torch",
    executor: Executor | None = None,
) -> tuple[StoreMeta, float]:
    """Write a label store parallel to `features`; returns its meta and the mean sq. distance.
    Shard by shard in this process, or each shard a work unit on a Dask `executor`: the same
    files either way."""
    meta = StoreMeta(
        source=f"kmeans({features.meta.source})",
        dim=0,
        dtype="int16" if len(centroids) <= 32767 else "int32",
        frame_rate_hz=features.meta.frame_rate_hz,
        num_shards=features.meta.num_shards,
        extra={**(features.meta.extra or {}), "k": len(centroids)},
    )
    meta.write(out_dir)
    n = meta.num_shards
    jobs = [(str(features.dir), i, n, centroids, str(out_dir), meta.dtype, implementation, chunk)
            for i in range(n)]  # fmt: skip
    if executor is not None and executor.kind == "dask":
        done = {i: (d, n) for i, d, n in run_units(_label_shard, jobs, executor)}
    else:  # in this process, with faiss's and torch's own threads, as before executors existed
        done = {i: (d, n) for i, d, n in map(_label_shard, jobs)}
    total_d = sum(done[i][0] for i in sorted(done))
    total_n = sum(n for _, n in done.values())
    return meta, total_d / max(total_n, 1)


def score(labels: FrameStore, manifest: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Cluster quality overall and per domain, for utterances with a phone alignment."""
    extra = labels.meta.extra or {}
    hop, window, k = extra["hop"], extra["window"], extra["k"]
    rows = manifest.set_index("id")
    phone_ids: dict[str, int] = {}
    per_domain: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for uid, lab in labels:
        row = rows.loc[uid]
        if row["phones"] is None:
            continue
        ph = frame_phones(row["phones"], len(lab), hop, window)
        ids = np.array([phone_ids.setdefault(p, len(phone_ids)) for p in ph], dtype=np.int64)
        per_domain[row["domain"]].append((ids, np.asarray(lab, dtype=np.int64)))
    if not per_domain:
        return {}
    counts = {
        domain: joint_counts(
            np.concatenate([a for a, _ in pairs]),
            np.concatenate([b for _, b in pairs]),
            len(phone_ids),
            k,
        )
        for domain, pairs in sorted(per_domain.items())
    }
    out = {domain: cluster_quality(c) for domain, c in counts.items()}
    out["all"] = cluster_quality(sum(counts.values()))
    out["all"]["num_phones"] = len(phone_ids)
    out["all"]["domain_pnmi"] = domain_pnmi(counts)
    return out


def domain_pnmi(counts: dict[str, np.ndarray]) -> float:
    """I(domain; cluster) / H(domain): the PNMI formula with the domain in place of the phone.
    Near 0 when the clusters say nothing of the channel, 1 when they encode it completely
    (DESIGN §4: raw MFCC labels on the default corpus carry 0.71 of it)."""
    if len(counts) < 2:
        return 0.0
    by_domain = np.stack([c.sum(axis=0) for c in counts.values()])  # (domains, k)
    return cluster_quality(by_domain)["pnmi"]
