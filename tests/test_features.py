import numpy as np
import pandas as pd
import pytest

from fixtures import tone, write
from hubert_ee.features.extract import FrameCountError, extract_split
from hubert_ee.features.mfcc import MfccSource
from hubert_ee.features.store import FrameStore, shard_name


@pytest.mark.parametrize("n", [400, 401, 559, 560, 16000, 16123])
def test_mfcc_frame_count_follows_kaldi_framing(n):
    src = MfccSource()
    feats = src(np.random.default_rng(0).normal(0, 0.1, n).astype(np.float32))
    assert feats.shape == (src.num_frames(n), 39) == (1 + (n - 400) // 160, 39)
    assert np.isfinite(feats).all()


def test_mfcc_is_deterministic_and_deltas_are_deltas():
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    a, b = MfccSource()(x), MfccSource()(x)
    assert np.array_equal(a, b)
    # A stationary tone has ~zero deltas in the middle of the utterance.
    assert np.abs(a[20:-20, 13:]).max() < 0.05 * np.abs(a[20:-20, :13]).max()


def _manifest(tmp_path, n=6):
    rows = []
    for i in range(n):
        p = write(tmp_path / f"{i}.wav", tone(0.5 + 0.1 * i, freq=200 + 40 * i))
        rows.append({"id": f"u{i}", "path": str(p), "start": 0.0, "duration": 0.5 + 0.1 * i})
    return pd.DataFrame(rows)


def test_extract_split_same_store_for_any_worker_count(tmp_path):
    m = _manifest(tmp_path)
    extract_split(MfccSource, m, tmp_path / "w1", num_shards=3, workers=1)
    extract_split(MfccSource, m, tmp_path / "w2", num_shards=3, workers=2)
    for i in range(3):
        for suffix in (".npy", ".lengths.npy", ".ids.txt"):
            name = shard_name(i, 3) + suffix
            assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()
    store = FrameStore(tmp_path / "w1")
    assert [u for u, _ in store] == list(m["id"])
    assert store.lengths()["u0"] == 1 + (8000 - 400) // 160


def test_extract_split_resumes_by_skipping_finished_shards(tmp_path):
    m = _manifest(tmp_path)
    out = tmp_path / "store"
    extract_split(MfccSource, m, out, num_shards=3, workers=1)
    done = out / f"{shard_name(1, 3)}.npy"
    before = done.stat().st_mtime_ns
    (out / f"{shard_name(2, 3)}.ids.txt").unlink()  # as if killed while writing shard 2
    extract_split(MfccSource, m, out, num_shards=3, workers=1)
    assert done.stat().st_mtime_ns == before
    assert len(list(FrameStore(out))) == len(m)


def test_a_store_of_other_rows_is_written_afresh_not_resumed(tmp_path, capsys):
    """Shards are cut by position: finishing a killed store with other rows would pair the old
    shards' utterances with the new manifest's."""
    m = _manifest(tmp_path)
    out = tmp_path / "store"
    extract_split(MfccSource, m, out, num_shards=3, workers=1)
    (out / f"{shard_name(2, 3)}.ids.txt").unlink()  # killed while writing shard 2
    shorter = m.assign(duration=m["duration"] - 0.1)  # the same ids, other audio
    extract_split(MfccSource, shorter, out, num_shards=3, workers=1)
    assert "shard files were made from other inputs" in capsys.readouterr().out
    lengths = FrameStore(out).lengths()
    assert [lengths[u] for u in m["id"]] == [
        MfccSource().num_frames(round(d * 16000)) for d in shorter["duration"]
    ]


class _WrongSource(MfccSource):
    name = "broken"

    def num_frames(self, num_samples):
        return super().num_frames(num_samples) + 1


def test_frame_count_mismatch_names_the_utterance(tmp_path):
    with pytest.raises(FrameCountError, match="utterance u0: broken gave"):
        extract_split(_WrongSource, _manifest(tmp_path, 1), tmp_path / "s", num_shards=1, workers=1)


def test_missing_shard_is_reported(tmp_path):
    extract_split(MfccSource, _manifest(tmp_path, 2), tmp_path / "s", num_shards=2, workers=1)
    (tmp_path / "s" / f"{shard_name(0, 2)}.ids.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"shards \[0\] of 2 are missing"):
        FrameStore(tmp_path / "s")
