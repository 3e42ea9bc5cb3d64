"""Cluster quality against frame-level phone labels (HuBERT paper, §IV-B / Table I).

With the joint distribution p(y, z) of phone y and cluster z over frames:
    phone purity   = Σ_z max_y p(y, z)   (how well a cluster predicts a phone)
    cluster purity = Σ_y max_z p(y, z)   (how well a phone predicts a cluster)
    PNMI           = I(y; z) / H(y)      (share of phone uncertainty the cluster removes)
"""

from __future__ import annotations

import numpy as np


def joint_counts(
    phone_ids: np.ndarray, cluster_ids: np.ndarray, num_phones: int, k: int
) -> np.ndarray:
    counts = np.zeros((num_phones, k), dtype=np.int64)
    np.add.at(counts, (phone_ids, cluster_ids), 1)
    return counts


def cluster_quality(counts: np.ndarray) -> dict[str, float]:
    total = counts.sum()
    if total == 0:
        raise ValueError("no frames to score")
    p = counts / total
    py = p.sum(axis=1)
    pz = p.sum(axis=0)
    nz = p > 0
    mi = float(np.sum(p[nz] * np.log(p[nz] / np.outer(py, pz)[nz])))
    h_y = float(-np.sum(py[py > 0] * np.log(py[py > 0])))
    return {
        "pnmi": mi / h_y if h_y > 0 else 0.0,
        "phone_purity": float(p.max(axis=0).sum()),
        "cluster_purity": float(p.max(axis=1).sum()),
        "mutual_information_nats": mi,
        "phone_entropy_nats": h_y,
        "frames": int(total),
    }
