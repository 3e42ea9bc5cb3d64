import numpy as np
import pytest

from hubert_ee.cluster.kmeans import fit, fit_torch, sample_fit_frames
from hubert_ee.cluster.pseudo_labels import label_store
from hubert_ee.features.store import FrameStore, StoreMeta, write_shard


def _blobs(k=8, n=400, dim=5, seed=0, spread=0.05):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (k, dim)).astype(np.float32)
    lab = rng.integers(k, size=n * k)
    x = centers[lab] + rng.normal(0, spread, (n * k, dim)).astype(np.float32)
    return x.astype(np.float32), centers


def _matched_error(found, true):
    d = ((found[:, None, :] - true[None]) ** 2).sum(-1)
    return float(np.sqrt(d.min(0)).max())


@pytest.mark.parametrize("impl", ["faiss", "torch", "sklearn"])
def test_recovers_well_separated_clusters(impl):
    x, centers = _blobs()
    model = fit(impl, x, 8, max_iter=100, n_init=3, seed=0)
    assert _matched_error(model.centroids, centers) < 0.05
    assert model.inertia == pytest.approx(5 * 0.05**2, rel=0.15)  # dim x noise variance


def test_torch_kmeans_is_deterministic_and_uses_several_iterations():
    x, _ = _blobs(k=16, spread=1.0)
    a = fit_torch(x, 16, 50, 1, seed=3)
    b = fit_torch(x, 16, 50, 1, seed=3)
    assert np.array_equal(a.centroids, b.centroids)
    assert a.iterations > 1


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_faiss_kmeans_is_deterministic_for_a_seed_and_uses_every_fit_frame(init):
    import faiss

    x, _ = _blobs(k=16, n=600, spread=1.0)  # 9,600 frames: > faiss's default 256 per centroid x 16
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        a = fit("faiss", x, 16, 20, 1, seed=3, init=init)
        b = fit("faiss", x, 16, 20, 1, seed=3, init=init)
        c = fit("faiss", x, 16, 20, 1, seed=4, init=init)
    finally:
        faiss.omp_set_num_threads(threads)
    assert a.implementation == "faiss"
    assert np.array_equal(a.centroids, b.centroids)
    assert not np.array_equal(a.centroids, c.centroids)
    # No subsampling: the centroids are exact means of their fit frames' clusters.
    lab = ((x[:, None] - a.centroids[None]) ** 2).sum(-1).argmin(1)
    means = np.stack([x[lab == j].mean(0) for j in range(16)])
    assert np.abs(means - a.centroids).max() < 0.05


def test_too_few_frames_is_a_clear_error():
    with pytest.raises(ValueError, match="only 5 fit frames for k=10"):
        fit("torch", np.zeros((5, 2), np.float32), 10, 10, 1, 0)


def _store(tmp_path, arrays, shards=2, dim=3):
    StoreMeta("test", dim, "float32", 100.0, shards, {"hop": 160, "window": 400}).write(tmp_path)
    idx = np.array_split(np.arange(len(arrays)), shards)
    for i, ix in enumerate(idx):
        write_shard(tmp_path, i, shards, [f"u{j}" for j in ix], [arrays[j] for j in ix], "float32")
    return FrameStore(tmp_path)


def test_sample_fit_frames_takes_whole_utterances_up_to_the_budget(tmp_path):
    arrays = [np.full((10, 3), j, np.float32) for j in range(200)]
    store = _store(tmp_path, arrays)
    x = sample_fit_frames([store], 0.1, 10_000, seed=0)
    assert len(x) == 200  # 10% of 2000 frames, in whole 10-frame utterances
    utts = x[::10, 0]
    assert all((x[i * 10 : i * 10 + 10] == u).all() for i, u in enumerate(utts))  # rows intact
    assert len(set(utts.tolist())) == 20
    assert len(sample_fit_frames([store], 1.0, 50, seed=0)) == 50  # the cap
    assert np.array_equal(x, sample_fit_frames([store], 0.1, 10_000, seed=0))


@pytest.mark.parametrize("impl", ["faiss", "torch"])
def test_label_store_matches_brute_force_and_keeps_lengths(tmp_path, impl):
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(n, 3)).astype(np.float32) for n in (5, 9, 1, 7)]
    store = _store(tmp_path / "f", arrays)
    c = rng.normal(size=(4, 3)).astype(np.float32)
    meta, _ = label_store(store, c, tmp_path / "l", chunk=3, implementation=impl)
    labels = FrameStore(tmp_path / "l")
    assert meta.extra["k"] == 4 and meta.dtype == "int16"
    for (uid, lab), a in zip(labels, arrays, strict=True):
        brute = ((a[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        assert lab.tolist() == brute.tolist(), uid
