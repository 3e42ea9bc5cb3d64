"""`hubert-ee transcribe` and `hubert_ee.load` on the smoke pipeline's early-exit model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ENV

import hubert_ee

pytestmark = pytest.mark.slow


def _cli(ws: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "hubert-ee"
    return subprocess.run(
        [str(exe), "transcribe", *args], cwd=ws, env=ENV, capture_output=True, text=True
    )


def _test_wav(ws: Path) -> Path:
    from hubert_ee.data.manifest import load_split

    test = load_split(ws / "data/prepared", "test")
    return ws / test[test["domain"] == "phone"]["path"].iloc[0]  # manifests are ws-relative


def test_cli_and_api_agree_and_report_exit_layers(smoke_ws, tmp_path):
    wav = _test_wav(smoke_ws)
    out = _cli(smoke_ws, "--json", str(wav))
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.splitlines()[0])
    assert set(row) >= {"text", "exit_layer", "duration_s", "processing_s", "path"}
    assert 1 <= row["exit_layer"] <= row["num_layers"]
    assert row["duration_s"] == pytest.approx(sf.info(str(wav)).duration, abs=1e-3)
    rec = hubert_ee.load(smoke_ws / "models/exits")
    api = rec.transcribe(wav)[0]
    assert api.text == row["text"] and api.exit_layer == row["exit_layer"]
    lexicon = {"the", "a", "cat", "dog"}
    beam = hubert_ee.load(smoke_ws / "models/exits").use_beam(4, lexicon).transcribe(wav)[0]
    assert set(beam.text.split()) <= lexicon  # beam search with a lexicon emits only its words
    full = rec.transcribe(wav, early_exit=False)[0]
    assert full.exit_layer == full.num_layers
    # a threshold no branch can pass (entropy < 0, confidence > 1) → the full model's answer
    if rec.criterion is not None:
        never = "0" if rec.criterion == "entropy" else "1"
        out = _cli(smoke_ws, "--json", "--threshold", never, str(wav))
        row = json.loads(out.stdout)
        assert row["text"] == full.text and row["exit_layer"] == full.num_layers


def test_cli_word_lm_writes_only_its_words_and_a_kenlm_file_needs_a_lexicon(smoke_ws, tmp_path):
    from hubert_ee.decode.ngram_lm import fit_kneser_ney

    wav = _test_wav(smoke_ws)
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("the cat saw a dog\na dog saw the cat\n")
    out = _cli(smoke_ws, "--lm", str(sentences), "--lm-weight", "2", str(wav))
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split("\t")[1].split()) <= {"the", "cat", "saw", "a", "dog"}
    assert "Loading the LM" not in out.stdout + out.stderr  # KenLM's chatter stays quiet
    arpa = fit_kneser_ney(sentences.read_text().splitlines()).write_arpa(tmp_path / "lm.arpa")
    out = _cli(smoke_ws, "--lm", str(arpa), str(wav))
    assert out.returncode != 0 and "pass --lexicon too" in out.stderr
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("the cat saw a dog")
    out = _cli(smoke_ws, "--lm", str(arpa), "--lexicon", str(lexicon), str(wav))
    assert out.returncode == 0, out.stderr


def test_bad_inputs_give_clear_errors_and_resampling_a_notice(smoke_ws, tmp_path):
    wav = _test_wav(smoke_ws)
    x, sr = sf.read(str(wav), dtype="float32")
    sf.write(str(tmp_path / "a_8k.wav"), x[::2], 8000)
    sf.write(str(tmp_path / "b_empty.wav"), np.zeros(0, dtype=np.float32), 16000)
    (tmp_path / "c_broken.wav").write_bytes(b"RIFF not really a wav")
    out = _cli(smoke_ws, str(tmp_path))
    assert out.returncode == 1
    assert "notice:" in out.stderr and "resampled 8000 Hz to 16000 Hz" in out.stderr
    assert "b_empty.wav: empty audio" in out.stderr
    assert "c_broken.wav: unreadable audio" in out.stderr
    assert str(tmp_path / "a_8k.wav") in out.stdout  # the good file is still transcribed
    out = _cli(smoke_ws, str(tmp_path / "missing.wav"))
    assert out.returncode == 1 and "no such file or folder" in out.stderr
