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


def label_store(
    features: FrameStore,
    centroids: np.ndarray,
    out_dir: Path,
    chunk: int = 262_144,
    implementation: str = "torch",
) -> tuple[StoreMeta, float]:
    """Write a label store parallel to `features`; returns its meta and the mean sq. distance."""
    meta = StoreMeta(
        source=f"kmeans({features.meta.source})",
        dim=0,
        dtype="int16" if len(centroids) <= 32767 else "int32",
        frame_rate_hz=features.meta.frame_rate_hz,
        num_shards=features.meta.num_shards,
        extra={**(features.meta.extra or {}), "k": len(centroids)},
    )
    meta.write(out_dir)
    nearest = _nearest(implementation, centroids)
    total_d, total_n = 0.0, 0
    for i in range(meta.num_shards):
        ids, lengths, data = features.shard(i)
        labels = np.empty(len(data), dtype=np.int64)
        for s in range(0, len(data), chunk):  # bounded memory: one chunk of the memmap at a time
            lab, d = nearest(np.array(data[s : s + chunk], dtype=np.float32))
            labels[s : s + chunk] = lab
            total_d += float(d.astype(np.float64).sum())
        total_n += len(data)
        splits = np.split(labels, np.cumsum(lengths)[:-1]) if len(ids) else []
        write_shard(out_dir, i, meta.num_shards, ids, splits, meta.dtype)
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
