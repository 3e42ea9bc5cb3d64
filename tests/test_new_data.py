"""Scheduled retraining sees new data (issue 18, item 5): on a manifest corpus, utterances added
to a manifest re-run `prepare` and everything after it and register a new challenger; a run
with nothing new runs nothing but the fingerprint."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ENV, ROOT, UP_TO_DATE, dvc_status, run

from hubert_ee.config import SPLITS

pytestmark = pytest.mark.slow
HELD_BACK = 6  # target-domain train utterances that "arrive" before the second run


def _manifest_corpus(prepared: Path, dest: Path, target: str) -> pd.DataFrame:
    """The smoke corpus's audio as one CSV manifest per split; returns the held-back rows."""
    from hubert_ee.data.manifest import load_split

    dest.mkdir(parents=True)
    held = None
    for split in SPLITS:
        df = load_split(prepared, split)
        rows = pd.DataFrame(
            {
                "id": df["id"],
                "path": [str((prepared.parent.parent / p).resolve()) for p in df["path"]],
                "text": df["text"].fillna("") if "text" in df else "",
                "domain": df["domain"],
                "speaker": df["speaker"],
            }
        )
        if split == "train":
            target_rows = rows.index[rows["domain"] == target]
            held = rows.loc[target_rows[-HELD_BACK:]]
            rows = rows.drop(target_rows[-HELD_BACK:])
        rows.to_csv(dest / f"{split}.csv", index=False)
    return held


def _flow(ws: Path, tmp: Path) -> dict[str, str]:
    env = {
        **ENV,
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "flows.pipeline", "--root", str(ws)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return dict(
        line.split(": ", 1)
        for line in proc.stdout.splitlines()
        if line.count(": ") == 1 and not line.startswith(" ")
    )


def _versions(ws: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{ws}/mlflow.db")
    return sorted(int(v.version) for v in client.search_model_versions("name='hubert-ee'"))


def test_new_utterances_in_a_manifest_retrain_what_they_feed(smoke_ws, tmp_path):
    from hubert_ee.profiles import materialize

    ws = materialize(ROOT, "smoke", tmp_path / "ws")
    params = yaml.safe_load((ws / "params.yaml").read_text())
    corpus = tmp_path / "corpus"
    held = _manifest_corpus(smoke_ws / "data/prepared", corpus, params["data"]["target_domain"])
    params["data"]["corpus"] = "manifest"
    params["data"]["real"] = {"root": str(corpus), "parts": {s: [f"{s}.csv"] for s in SPLITS}}
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "init", "--no-scm", "-q"], ws)
    stages = [s for s in _flow(ws, tmp_path) if s != "register"]
    assert "prepare" in stages and "threshold_search" in stages
    assert _versions(ws) == [1]
    before = json.loads((ws / "data/corpus.json").read_text())

    train = pd.read_csv(corpus / "train.csv", dtype=str, keep_default_na=False)
    pd.concat([train, held.astype(str)]).to_csv(corpus / "train.csv", index=False)
    t0 = time.time()
    second = _flow(ws, tmp_path)
    t_second = time.time() - t0
    after = json.loads((ws / "data/corpus.json").read_text())
    assert after["utterances"]["train"] == before["utterances"]["train"] + HELD_BACK
    assert after["sha256"] != before["sha256"]
    ran = {s for s, outcome in second.items() if outcome == "ran"}
    assert {"corpus", "prepare", "features_iter1", "kmeans_iter1", "distill"} <= ran
    prepared = json.loads((ws / "metrics/prepare.json").read_text())
    assert sum(prepared["utterances"]["train"].values()) == after["utterances"]["train"]
    assert _versions(ws) == [1, 2]  # the retrained model is registered as a challenger

    t0 = time.time()
    third = _flow(ws, tmp_path)
    t_third = time.time() - t0
    assert {s for s, outcome in third.items() if outcome == "ran"} == {"corpus"}
    assert _versions(ws) == [1, 2]
    assert dvc_status(ws) == UP_TO_DATE
    print(f"new data: retrain {t_second:.0f} s, nothing new {t_third:.0f} s")
