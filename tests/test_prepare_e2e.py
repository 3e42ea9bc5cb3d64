"""The real `prepare` stage on the smoke profile, through DVC, as a user runs it."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from conftest import ENV, UP_TO_DATE, dvc_status, run

from hubert_ee.data.manifest import load_split
from hubert_ee.data.text import words_of

pytestmark = pytest.mark.slow
_run = run
STAGES = [
    "prepare",
    "features_iter1",
    "kmeans_iter1",
    "pretrain_iter1",
    "features_iter2",
    "kmeans_iter2",
    "pretrain_iter2",
    "finetune@read",
    "finetune@lecture",
    "supernet",
    "teacher_outputs",
    "distill",
    "exits",
    "threshold_search",
]


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_second_repro_skips_every_stage(smoke_ws):
    out = _run(["dvc", "repro"], smoke_ws)
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in out
    # only the source-data fingerprint runs, and it found the corpus unchanged
    assert re.findall(r"Running stage '([^']+)'", out) == list(UP_TO_DATE)


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


def test_features_and_labels_line_up(smoke_ws):
    from hubert_ee.features.mfcc import MfccSource
    from hubert_ee.features.store import FrameStore

    m = json.loads((smoke_ws / "metrics/kmeans_iter1.json").read_text())
    assert m["k"] == 20 and m["label_rate_hz"] == 100.0 and m["scored_split"] == "dev"
    assert 0.05 < m["pnmi"] < 1.0 and {"pnmi/read", "pnmi/lecture", "pnmi/phone"} <= set(m)
    assert 0 < m["phone_purity"] <= 1 and 0 < m["cluster_purity"] <= 1
    assert np.load(smoke_ws / "data/labels/iter1/centroids.npy").shape == (20, 39)
    manifest = load_split(smoke_ws / "data/prepared", "train").set_index("id")
    feats = FrameStore(smoke_ws / "data/features/iter1/train")
    labels = FrameStore(smoke_ws / "data/labels/iter1/train")
    n = 0
    for (fid, f), (lid, lab) in zip(feats, labels, strict=True):
        assert fid == lid and len(f) == len(lab)
        assert len(f) == MfccSource().num_frames(manifest.loc[fid, "num_samples"])
        assert lab.min() >= 0 and lab.max() < 20
        n += 1
    assert n == len(manifest)


def test_stages_after_prepare_are_skipped_when_nothing_changed(smoke_ws):
    assert dvc_status(smoke_ws) == UP_TO_DATE


def test_iteration2_features_and_labels_from_any_checkpoint(smoke_ws, tmp_path):
    """Until pretraining exists: the iteration-2 programs on a random-init encoder checkpoint."""
    import torch

    from hubert_ee.features.store import FrameStore
    from hubert_ee.models import config
    from hubert_ee.models.checkpoint import save_encoder
    from hubert_ee.models.encoder import HubertEncoder

    torch.manual_seed(0)
    ckpt = tmp_path / "encoder.safetensors"
    save_encoder(HubertEncoder(config.tiny()), ckpt)
    feats, labels = tmp_path / "features", tmp_path / "labels"
    _run(
        [
            sys.executable,
            "-m",
            "tasks.features",
            "--iteration",
            "2",
            "--checkpoint",
            str(ckpt),
            "--out",
            str(feats),
            "--metrics",
            str(tmp_path / "f.json"),
        ],
        smoke_ws,
    )
    out = _run(
        [
            sys.executable,
            "-m",
            "tasks.kmeans",
            "--iteration",
            "2",
            "--features",
            str(feats),
            "--out",
            str(labels),
            "--metrics",
            str(tmp_path / "k.json"),
        ],
        smoke_ws,
    )
    assert "(k=20, 50 Hz)" in out
    m = json.loads((tmp_path / "k.json").read_text())
    assert m["label_rate_hz"] == 50.0 and 0 < m["pnmi"] < 1
    manifest = load_split(smoke_ws / "data/prepared", "dev").set_index("id")
    for uid, lab in FrameStore(labels / "dev"):
        assert len(lab) == config.tiny().num_frames(manifest.loc[uid, "num_samples"])


def test_iteration2_without_checkpoint_is_a_clear_error(smoke_ws):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tasks.features",
            "--iteration",
            "2",
            "--out",
            "x",
            "--metrics",
            "y",
        ],
        cwd=smoke_ws,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "pass --checkpoint" in proc.stderr


def test_every_stage_logged_an_mlflow_run(smoke_ws):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{smoke_ws}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("hubert-ee")
    runs = client.search_runs([exp.experiment_id], order_by=["attribute.start_time ASC"])
    # Other tests run stage programs in this workspace too: the repro's run is each stage's first.
    by_name = {}
    for r in runs:
        by_name.setdefault(r.info.run_name, r)
    stages = STAGES
    assert set(stages) <= set(by_name)
    runs = [by_name[s] for s in stages]
    assert all(r.info.status == "FINISHED" for r in runs)
    km = json.loads((smoke_ws / "metrics/kmeans_iter1.json").read_text())
    assert by_name["kmeans_iter1"].data.metrics["pnmi"] == km["pnmi"]
    assert by_name["prepare"].data.params["data/target_domain"] == "phone"
    history = client.get_metric_history(by_name["pretrain_iter1"].info.run_id, "train/loss")
    assert [m.step for m in history] == list(range(2, 13, 2))  # every log_every steps
