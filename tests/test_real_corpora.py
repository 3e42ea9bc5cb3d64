"""Loaders on tiny fixture trees in the real corpora's layouts."""

from pathlib import Path

import soundfile as sf

from fixtures import tone, write
from hubert_ee.config import RealCorpusConfig
from hubert_ee.data.real_corpora import (
    clean_tedlium_text,
    load_generic,
    load_librispeech,
    load_tedlium,
)
from hubert_ee.data.validate import Accepted, Rejected, validate


def _librispeech(root: Path) -> None:
    for part, spk, chap, n in (("dev-clean", "84", "121123", 2), ("test-clean", "61", "70968", 2)):
        d = root / "LibriSpeech" / part / spk / chap
        lines = []
        for i in range(n):
            uid = f"{spk}-{chap}-{i:04d}"
            write(d / f"{uid}.flac", tone(1.0 + i / 4, freq=200 + 50 * i), format="FLAC")
            lines.append(f"{uid} GO DO YOU HEAR NUMBER {'ONE' if i else 'ZERO'}")
        (d / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    # One corrupt flac: must be rejected by validation, not crash the listing.
    (root / "LibriSpeech/dev-clean/84/121123/84-121123-0001.flac").write_bytes(b"fLaC broken")


def test_librispeech_layout_flac(tmp_path):
    _librispeech(tmp_path)
    cfg = RealCorpusConfig(
        root=str(tmp_path),
        parts={"dev": ["dev-clean"], "test": ["test-clean"]},
        part_domains={"dev-clean": "clean"},
        default_domain="other",
    )
    utts = load_librispeech(cfg)
    assert [u.id for u in utts] == [
        "84-121123-0000",
        "84-121123-0001",
        "61-70968-0000",
        "61-70968-0001",
    ]
    assert utts[0].text == "GO DO YOU HEAR NUMBER ZERO" and utts[0].speaker == "84"
    assert [u.domain for u in utts] == ["clean", "clean", "other", "other"]
    result = validate(utts, tmp_path / "out", 0.3, 20.0, workers=1)
    assert [r.utt.id for r in result.rejected] == ["84-121123-0001"]
    assert "unreadable" in result.rejected[0].reason
    ok = {a.utt.id: a for a in result.accepted}
    assert ok["61-70968-0001"].utt.text == "go do you hear number one"
    assert ok["61-70968-0001"].num_samples == 20000


def _tedlium(root: Path) -> None:
    d = root / "legacy" / "dev"
    write(
        d / "sph" / "TalkA.sph",
        (tone(6.0) * 20000).astype("int16"),
        format="NIST",
        subtype="PCM_16",
    )
    (d / "stm").mkdir(parents=True)
    (d / "stm" / "TalkA.stm").write_text(
        "TalkA 1 TalkA 0.50 2.10 <o,f0,male> so it 's a <unk> problem\n"
        "TalkA 1 inter_segment_gap 2.10 2.50 <o,,unknown> ignore_time_segment_in_scoring\n"
        "TalkA 1 TalkA 2.50 5.00 <o,f0,male> and {NOISE} we solved it\n"
        "TalkA 1 TalkA 5.00 9.00 <o,f0,male> past the end of the talk\n"
    )


def test_tedlium_sphere_and_stm_segments(tmp_path):
    _tedlium(tmp_path)
    assert sf.info(str(tmp_path / "legacy/dev/sph/TalkA.sph")).format == "NIST"
    cfg = RealCorpusConfig(root=str(tmp_path), parts={"dev": ["dev"]}, default_domain="ted")
    utts = load_tedlium(cfg)
    assert [(u.start, u.duration) for u in utts] == [(0.5, 1.6), (2.5, 2.5), (5.0, 4.0)]
    assert utts[0].text == "so it's a problem" and utts[1].text == "and we solved it"
    assert {u.recording_id for u in utts} == {"TalkA"}
    result = validate(utts, tmp_path / "out", 0.3, 20.0, workers=1)
    assert len(result.accepted) == 2 and "beyond the 6.00 s file" in result.rejected[0].reason


def test_clean_tedlium_text():
    assert clean_tedlium_text("we 're here <unk> [NOISE] now") == "we're here now"


def test_kaldi_data_dir_with_segments(tmp_path):
    write(tmp_path / "rec1.wav", tone(4.0))
    kd = tmp_path / "kaldi"
    kd.mkdir()
    (kd / "wav.scp").write_text(f"rec1 {tmp_path / 'rec1.wav'}\nrec2 sox x.wav -t wav - |\n")
    (kd / "segments").write_text("u1 rec1 0.0 1.5\nu2 rec1 1.5 3.9\nu3 rec2 0 1\n")
    (kd / "text").write_text("u1 HELLO THERE\nu2 GENERAL KENOBI\nu3 PIPED\n")
    (kd / "utt2spk").write_text("u1 s1\nu2 s2\nu3 s3\n")
    cfg = RealCorpusConfig(root=str(tmp_path), parts={"train": ["kaldi"]})
    utts = load_generic(cfg)
    assert [(u.id, u.recording_id, u.start, u.speaker) for u in utts][:2] == [
        ("u1", "rec1", 0.0, "s1"),
        ("u2", "rec1", 1.5, "s2"),
    ]
    result = validate(utts, tmp_path / "out", 0.3, 20.0, workers=1)
    assert [a.utt.id for a in result.accepted] == ["u1", "u2"]
    assert (
        isinstance(result.rejected[0], Rejected)
        and "unsupported piped" in result.rejected[0].reason
    )


def test_fairseq_tsv_with_wrd(tmp_path):
    write(tmp_path / "wavs" / "x.wav", tone(1.0))
    write(tmp_path / "wavs" / "y.wav", tone(2.0))
    (tmp_path / "train.tsv").write_text(f"{tmp_path / 'wavs'}\nx.wav\t16000\ny.wav\t32000\n")
    (tmp_path / "train.wrd").write_text("FIRST ONE\nSECOND ONE\n")
    utts = load_generic(RealCorpusConfig(root=str(tmp_path), parts={"train": ["train.tsv"]}))
    result = validate(utts, tmp_path / "out", 0.3, 20.0, workers=1)
    assert [(a.utt.id, a.utt.text, a.num_samples) for a in result.accepted] == [
        ("x", "first one", 16000),
        ("y", "second one", 32000),
    ]
    assert all(isinstance(a, Accepted) for a in result.accepted)
