"""`make repro PROFILE=smoke+w2v2`: the whole DAG with wav2vec 2.0 pretraining, as a user runs
it. Nothing computes labels, and every stage after pretraining takes the wav2vec 2.0 encoder
as it takes HuBERT's."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, UP_TO_DATE, dvc_status, run

from hubert_ee.models.checkpoint import checkpoint_metadata
from hubert_ee.profiles import materialize

pytestmark = pytest.mark.slow


def test_smoke_with_wav2vec2_runs_the_whole_dag_without_labels(tmp_path):
    ws = materialize(ROOT, "smoke+w2v2", tmp_path / "smoke+w2v2")
    run(["dvc", "init", "--no-scm", "-q"], ws)
    log = run(["dvc", "repro"], ws)
    assert "Running stage 'pretrain_iter2'" in log and "Running stage 'threshold_search'" in log
    assert "kmeans" not in log and "features_iter" not in log
    assert not (ws / "data/labels").exists() and not (ws / "data/features").exists()
    for it in (1, 2):
        m = json.loads((ws / f"metrics/pretrain_iter{it}.json").read_text())
        assert m["objective"] == "wav2vec2" and m["steps"] == 12 and m["loss"] > 0
        encoder = ws / f"models/pretrain_iter{it}/encoder.safetensors"
        assert checkpoint_metadata(encoder)["objective"] == "wav2vec2"
    headline = json.loads((ws / "summary/headline.json").read_text())
    assert headline, "the summary of a wav2vec 2.0 run is empty"
    for name in ("finetune_read", "distill", "exits", "threshold_search"):
        assert json.loads((ws / f"metrics/{name}.json").read_text()), name
    assert dvc_status(ws) == UP_TO_DATE  # a second repro would run nothing
