"""The real `prepare` stage on the smoke profile, through DVC, as a user runs it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from hubert_ee.data.manifest import load_split
from hubert_ee.data.text import words_of
from hubert_ee.profiles import materialize

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}:{os.environ['PATH']}"}


def _run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def smoke_ws(tmp_path_factory, request) -> Path:
    ws = materialize(request.config.rootpath, "smoke", tmp_path_factory.mktemp("ws") / "smoke")
    _run(["dvc", "init", "--no-scm", "-q"], ws)
    _run(["dvc", "repro"], ws)
    return ws


def test_second_repro_skips_prepare(smoke_ws):
    out = _run(["dvc", "repro"], smoke_ws)
    assert "Stage 'prepare' didn't change, skipping" in out
    assert "Running stage" not in out


def test_metrics_have_the_contract_keys(smoke_ws):
    m = json.loads((smoke_ws / "metrics/prepare.json").read_text())
    for split in ("unlabeled", "train", "dev", "test"):
        assert set(m["hours"][split]) == {"read", "lecture", "phone"}
        assert all(v > 0 for v in m["utterances"][split].values())
    assert m["rejected"] == 0
    # Sizes follow params (planner estimate vs synthesized audio within 25% at smoke scale).
    assert m["hours"]["train"]["read"] == pytest.approx(0.03, rel=0.25)
    assert m["hours"]["train"]["phone"] == pytest.approx(0.012, rel=0.25)


def test_corpus_is_what_downstream_needs(smoke_ws, monkeypatch):
    monkeypatch.chdir(smoke_ws)
    splits = {s: load_split("data/prepared", s) for s in ("unlabeled", "train", "dev", "test")}
    train_text = set(splits["train"]["text"])
    test_text = set(splits["test"]["text"]) | set(splits["dev"]["text"])
    assert not test_text & train_text and not test_text & set(splits["unlabeled"]["text"])
    assert words_of(test_text) <= words_of(train_text)
    row = splits["test"].iloc[0]
    x, sr = sf.read(row["path"])
    assert sr == 16000 and x.ndim == 1 and len(x) == row["num_samples"]
    # Frame-level phone alignment: contiguous spans covering the audio.
    phones = row["phones"]
    ends = np.array([s + d for _, s, d in phones])
    assert np.allclose(ends[:-1], [s for _, s, _ in phones[1:]], atol=1e-4)
    assert ends[-1] == pytest.approx(len(x) / sr, abs=0.02)
    phone_domain = splits["train"][splits["train"]["domain"] == "phone"].iloc[0]
    assert phone_domain["telephone"] and phone_domain["noise_kind"] in ("white", "pink", "babble")
    lecture = splits["train"][splits["train"]["domain"] == "lecture"]
    assert lecture["rt60_s"].notna().all()


def test_same_params_give_identical_bytes_for_any_worker_count(smoke_ws, tmp_path):
    params = yaml.safe_load((smoke_ws / "params.yaml").read_text())
    assert params["num_workers"] == 2
    params["num_workers"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    _run([sys.executable, "-m", "tasks.prepare"], tmp_path)
    assert _tree_digest(tmp_path / "data/prepared") == _tree_digest(smoke_ws / "data/prepared")
