"""The source-data fingerprint `prepare` depends on: equal for equal data, different for any
change a retraining must see (issue 18, item 5)."""

from __future__ import annotations

import os
import shutil

import pytest

from fixtures import tone, write
from hubert_ee.config import DataConfig
from hubert_ee.corpus_fingerprint import corpus_fingerprint


def _corpus(root):
    for i in range(3):
        write(root / "wavs" / f"u{i}.wav", tone(1.0 + i / 4, freq=200 + 40 * i))
    (root / "train.csv").write_text(
        "id,path,text,domain\n" + "".join(f"u{i},wavs/u{i}.wav,word {i},a\n" for i in range(2))
    )
    return DataConfig(
        corpus="manifest",
        sample_rate=16000,
        min_duration_s=0.3,
        max_duration_s=20.0,
        teacher_domains=["a"],
        target_domain="b",
        real={"root": str(root), "parts": {"train": ["train.csv"]}},
    )


def test_same_files_same_fingerprint_wherever_the_corpus_lies(tmp_path):
    data = _corpus(tmp_path / "one")
    fp = corpus_fingerprint(data)
    assert fp["utterances"] == {"train": 2} and fp["audio_files"] == 2
    assert fp["audio_bytes"] == sum(
        os.path.getsize(tmp_path / "one/wavs" / f"u{i}.wav") for i in range(2)
    )
    assert corpus_fingerprint(data) == fp
    shutil.copytree(tmp_path / "one", tmp_path / "two", copy_function=shutil.copy2)  # keeps mtimes
    moved = data.model_copy(
        update={"real": data.real.model_copy(update={"root": str(tmp_path / "two")})}
    )
    assert corpus_fingerprint(moved) == fp  # paths are taken relative to data.real.root


@pytest.mark.parametrize("change", ["new row", "new text", "audio rewritten", "audio deleted"])
def test_any_change_prepare_would_see_changes_the_fingerprint(tmp_path, change):
    data = _corpus(tmp_path)
    fp = corpus_fingerprint(data)
    manifest = tmp_path / "train.csv"
    if change == "new row":
        manifest.write_text(manifest.read_text() + "u2,wavs/u2.wav,word two,a\n")
    elif change == "new text":
        manifest.write_text(manifest.read_text().replace("word 1", "word one"))
    elif change == "audio rewritten":
        write(tmp_path / "wavs/u1.wav", tone(1.5, freq=333))
    else:
        (tmp_path / "wavs/u1.wav").unlink()
    after = corpus_fingerprint(data)
    assert after["sha256"] != fp["sha256"]
    if change == "new row":
        assert after["utterances"] == {"train": 3}
    if change == "audio deleted":  # the validator rejects it later; the fingerprint just notes it
        assert after["audio_files"] == 2 and after["audio_bytes"] < fp["audio_bytes"]


def test_synthetic_corpus_has_no_source_files(smoke_params):
    assert corpus_fingerprint(smoke_params.data) == {
        "corpus": "synthetic",
        "sources": "generated from params (data.synthetic)",
    }
