import math

import numpy as np
import pytest

from hubert_ee.cluster.metrics import cluster_quality, joint_counts
from hubert_ee.cluster.phones import SILENCE, frame_phones, normalize_phone


def test_perfect_clustering():
    q = cluster_quality(np.array([[2, 0], [0, 2]]))
    assert q["pnmi"] == pytest.approx(1.0)
    assert q["phone_purity"] == q["cluster_purity"] == 1.0


def test_independent_clustering():
    q = cluster_quality(np.array([[1, 1], [1, 1]]))
    assert q["pnmi"] == pytest.approx(0.0, abs=1e-12)
    assert q["phone_purity"] == q["cluster_purity"] == 0.5


def test_hand_computed_asymmetric_case():
    # p(y,z) = [[.5, 0], [.25, .25]]: phones y0, y1; clusters z0, z1.
    q = cluster_quality(np.array([[2, 0], [1, 1]]))
    mi = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    assert q["mutual_information_nats"] == pytest.approx(mi)
    assert q["pnmi"] == pytest.approx(mi / math.log(2))
    assert q["phone_purity"] == pytest.approx(0.75)  # .5 (z0 → y0) + .25 (z1 → y1)
    assert q["cluster_purity"] == pytest.approx(0.75)  # .5 (y0 → z0) + .25 (y1 → either)


def test_more_clusters_than_phones_splitting_keeps_pnmi_one():
    # Splitting a phone over several clusters loses no phone information.
    assert cluster_quality(np.array([[3, 3, 0], [0, 0, 5]]))["pnmi"] == pytest.approx(1.0)


def test_joint_counts():
    c = joint_counts(np.array([0, 0, 1, 2]), np.array([1, 1, 0, 1]), 3, 2)
    assert c.tolist() == [[0, 2], [1, 0], [0, 1]]


def test_empty_counts_is_an_error():
    with pytest.raises(ValueError):
        cluster_quality(np.zeros((2, 2), dtype=int))


def test_normalize_phone_folds_stress_and_pauses():
    assert normalize_phone("'aU") == "aU"
    assert normalize_phone(",i@3") == "i@3"
    assert normalize_phone("_:") == SILENCE and normalize_phone("_") == SILENCE


def test_frame_phones_uses_frame_centres():
    # 100 Hz MFCC framing: frame t is centred at (160 t + 200) / 16000 s.
    phones = [("a", 0.02, 0.03), ("'b", 0.05, 0.02)]  # a: [20, 50) ms, b: [50, 70) ms
    got = frame_phones(phones, 7, hop=160, window=400)
    # centres: 12.5, 22.5, 32.5, 42.5, 52.5, 62.5, 72.5 ms
    assert got == [SILENCE, "a", "a", "a", "b", "b", SILENCE]


def test_domain_pnmi_is_one_for_channel_coded_clusters_and_zero_for_independent_ones():
    from hubert_ee.cluster.pseudo_labels import domain_pnmi

    # per domain: (phones x clusters) counts; domain a uses clusters 0-1, domain b clusters 2-3
    coded = {"a": np.array([[5, 5, 0, 0]]), "b": np.array([[0, 0, 3, 7]])}
    assert domain_pnmi(coded) == pytest.approx(1.0)
    same = {"a": np.array([[2, 4, 6, 8]]), "b": np.array([[1, 2, 3, 4]])}
    assert domain_pnmi(same) == pytest.approx(0.0, abs=1e-12)
    # half coded: H(domain) = ln 2; cluster 0 shared, 1 only a, 2 only b, equal masses:
    # I = ln2 - 1/2·ln2 (only the shared half keeps its doubt) → ratio 0.5
    half = {"a": np.array([[2, 2, 0]]), "b": np.array([[2, 0, 2]])}
    assert domain_pnmi(half) == pytest.approx(0.5)
    assert domain_pnmi({"a": np.array([[1, 2]])}) == 0.0  # one domain: nothing to encode


def test_cmvn_gives_zero_mean_unit_variance_per_dimension():
    from hubert_ee.features.normalize import cmvn

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.5, (200, 4)).astype(np.float32)
    x[:, 3] = 7.0  # a constant dimension
    y = cmvn(x)
    assert np.allclose(y[:, :3].mean(0), 0, atol=1e-5)
    assert np.allclose(y[:, :3].std(0), 1, atol=1e-4)
    assert np.all(y[:, 3] == 0)
    # a channel offset and gain vanish: the same utterance through two "channels" agrees
    assert np.allclose(cmvn(x[:, :3] * 0.3 + 5.0), y[:, :3], atol=1e-4)
