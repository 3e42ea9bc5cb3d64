"""k-means for pseudo-labels, fit on a random subset streamed from a feature store.

Three implementations, selectable in params:
- `faiss` (default): `faiss.Kmeans`, the field's library for this (mHuBERT-147 moved to it),
  k-means++ or random init, on the whole fit subset (no silent subsampling); on a GPU build of
  faiss it runs there;
- `sklearn`: the reference recipe of fairseq's HuBERT (DESIGN §4), MiniBatchKMeans with
  k-means++ init, batch 10000, tol 0, max_no_improvement 100, n_init 20, no reassignment;
- `torch`: our full-batch Lloyd iterations from a k-means++ start, distances as one matmul per
  chunk, on GPU when one is there (the GPU path when faiss has no GPU build).
None needs the feature dump in RAM: only the fit subset is loaded; labels are assigned shard by
shard.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from hubert_ee.features.store import FrameStore


@dataclass
class KMeansFit:
    centroids: np.ndarray  # (K, D) float32
    inertia: float  # mean squared distance of a fit frame to its centroid
    iterations: int
    seconds: float
    implementation: str


def sample_fit_frames(
    stores: list[FrameStore], fraction: float, max_frames: int, seed: int
) -> np.ndarray:
    """Frames of random whole utterances: `fraction` of all frames (fairseq's `percent`), at most
    `max_frames` (+ one utterance). Utterances are chosen from the length index alone and read
    into one preallocated array, so memory is bounded by the subset, not by the store."""
    rng = np.random.default_rng(seed)
    index = []  # (store, shard, first utterance offset, lengths) per shard
    for si, store in enumerate(stores):
        for sh in range(store.meta.num_shards):
            index.append((si, sh, store.shard(sh)[1]))
    lengths = np.concatenate([lens for _, _, lens in index]) if index else np.zeros(0, np.int64)
    if lengths.sum() == 0:
        raise ValueError("the fit splits hold no frames")
    budget = min(fraction * lengths.sum(), max_frames)
    order = rng.permutation(len(lengths))
    take = order[: int(np.searchsorted(np.cumsum(lengths[order]), budget)) + 1]
    chosen = np.zeros(len(lengths), dtype=bool)
    chosen[take] = True
    dim = stores[0].meta.dim
    x = np.empty((int(lengths[chosen].sum()), dim), dtype=np.float32)
    pos, base = 0, 0
    for si, sh, lens in index:
        sel = np.flatnonzero(chosen[base : base + len(lens)])
        base += len(lens)
        if len(sel) == 0:
            continue
        data = stores[si].shard(sh)[2]
        offsets = np.concatenate([[0], np.cumsum(lens)])
        for j in sel:
            n = lens[j]
            x[pos : pos + n] = data[offsets[j] : offsets[j] + n]
            pos += n
        del data  # unmap the shard before the next one
    return x


def _sq_dists(x: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor) -> torch.Tensor:
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ c.T + c_sq).clamp_min_(0)


def assign(
    x: torch.Tensor, centroids: torch.Tensor, chunk: int = 65536
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid and its squared distance for every row, in chunks."""
    c_sq = centroids.pow(2).sum(1)
    labels, dists = [], []
    for s in range(0, len(x), chunk):
        d = _sq_dists(x[s : s + chunk], centroids, c_sq)
        m = d.min(1)
        labels.append(m.indices)
        dists.append(m.values)
    return torch.cat(labels), torch.cat(dists)


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ (as sklearn: 2 + log k candidates per step, keep the best)."""
    n = len(x)
    trials = 2 + int(np.log(k))
    centers = [x[torch.randint(n, (1,), generator=gen, device=x.device)].squeeze(0)]
    closest = (x - centers[0]).pow(2).sum(1)
    for _ in range(1, k):
        probs = closest / closest.sum()
        cand = torch.multinomial(probs, trials, replacement=True, generator=gen)
        d = torch.cdist(x, x[cand]).pow(2)  # (n, trials)
        new_closest = torch.minimum(closest.unsqueeze(1), d)
        best = int(new_closest.sum(0).argmin())
        closest = new_closest[:, best]
        centers.append(x[cand[best]])
    return torch.stack(centers)


def _update(
    x: torch.Tensor, labels: torch.Tensor, d: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """Lloyd step: centroids = cluster means; empty clusters re-seeded at the worst-fit frames."""
    k = len(c)
    sums = torch.zeros_like(c).index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=k).to(x.dtype)
    new = sums / counts.clamp_min(1).unsqueeze(1)
    empty = counts == 0
    if empty.any():
        new[empty] = x[d.topk(int(empty.sum())).indices]
    return new


def fit_torch(
    x_np: np.ndarray,
    k: int,
    max_iter: int,
    n_init: int,
    seed: int,
    tol: float = 1e-4,
    device: str | None = None,
) -> KMeansFit:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    x = torch.from_numpy(x_np).to(device, torch.float32)
    gen = torch.Generator(device=device).manual_seed(seed)
    best: tuple[float, torch.Tensor, int] | None = None
    for _ in range(n_init):
        c = _kmeans_pp(x, k, gen)
        prev = float("inf")
        for it in range(1, max_iter + 1):  # noqa: B007 (`it` is the iteration count after the loop)
            labels, d = assign(x, c)
            inertia = float(d.mean())
            if prev - inertia <= tol * inertia:
                break  # converged: c is the model that `inertia` measures
            prev = inertia
            c = _update(x, labels, d, c)
        else:
            inertia = float(assign(x, c)[1].mean())
        if best is None or inertia < best[0]:
            best = (inertia, c.clone(), it)
    inertia, c, iters = best
    return KMeansFit(
        c.cpu().numpy().astype(np.float32), inertia, iters, time.perf_counter() - t0, "torch"
    )


def fit_sklearn(
    x: np.ndarray, k: int, max_iter: int, n_init: int, seed: int, batch_size: int = 10000
) -> KMeansFit:
    """fairseq `learn_kmeans.py` settings."""
    from sklearn.cluster import MiniBatchKMeans

    t0 = time.perf_counter()
    km = MiniBatchKMeans(
        n_clusters=k,
        init="k-means++",
        max_iter=max_iter,
        batch_size=batch_size,
        tol=0.0,
        max_no_improvement=100,
        n_init=n_init,
        reassignment_ratio=0.0,
        compute_labels=False,
        random_state=seed,
    ).fit(x)
    seconds = time.perf_counter() - t0
    c = km.cluster_centers_.astype(np.float32)
    _, d = assign(torch.from_numpy(x), torch.from_numpy(c))
    return KMeansFit(c, float(d.mean()), int(km.n_iter_), seconds, "sklearn")


def _faiss_gpus() -> int:
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def fit_faiss(
    x: np.ndarray,
    k: int,
    max_iter: int,
    n_init: int,
    seed: int,
    init: str = "kmeans++",
    max_points_per_centroid: int | None = None,
) -> KMeansFit:
    """`faiss.Kmeans` on every fit frame: `max_points_per_centroid` is raised so that faiss does
    not subsample the fit set behind our back (its default keeps 256 points per centroid); a
    value here subsamples on purpose (benchmarks/kmeans.py measures what that costs)."""
    import faiss

    t0 = time.perf_counter()
    x = np.ascontiguousarray(x, dtype=np.float32)
    gpus = _faiss_gpus()
    km = faiss.Kmeans(
        x.shape[1],
        k,
        niter=max_iter,
        nredo=n_init,
        seed=seed,
        verbose=False,
        max_points_per_centroid=max_points_per_centroid or -(-len(x) // k) + 1,
        min_points_per_centroid=1,
        init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS
        if init == "kmeans++"
        else faiss.ClusteringInitMethod_RANDOM,
        gpu=gpus or False,
    )
    km.train(x)
    seconds = time.perf_counter() - t0
    c = km.centroids.astype(np.float32)
    _, d = assign(torch.from_numpy(x), torch.from_numpy(c))
    name = "faiss-gpu" if gpus else "faiss"
    return KMeansFit(c, float(d.mean()), max_iter, seconds, name)


def fit(
    implementation: str,
    x: np.ndarray,
    k: int,
    max_iter: int,
    n_init: int,
    seed: int,
    init: str = "kmeans++",
) -> KMeansFit:
    if len(x) < k:
        raise ValueError(
            f"only {len(x)} fit frames for k={k} clusters; raise kmeans.fit_fraction or use more data"
        )
    if implementation == "faiss":
        return fit_faiss(x, k, max_iter, n_init, seed, init)
    if implementation == "torch":
        return fit_torch(x, k, max_iter, n_init, seed)
    if implementation == "sklearn":
        return fit_sklearn(x, k, max_iter, n_init, seed)
    raise ValueError(f"unknown k-means implementation {implementation!r} (faiss | torch | sklearn)")
